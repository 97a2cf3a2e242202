// How a page gets its token (docs/web.md, "The pages"): never from the query string,
// which lands in access logs, proxies and Referer headers.
//  - the URL fragment `#token=...` (a fragment is never sent to a server); the page
//    removes it from the address bar and history at once;
//  - or a message from the host app that embeds the page (an in-app web view, an
//    iframe): window.postMessage({type: "barrage.token", token}, origin);
//  - kept in sessionStorage (this tab only) so a reload keeps working.

const MESSAGE_TYPE = "barrage.token";

export function tokenFromFragment(key: string): string | null {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (token) {
    sessionStorage.setItem(key, token);
    history.replaceState(null, "", location.pathname); // drop it from the bar and history
    return token;
  }
  return sessionStorage.getItem(key);
}

/** Resolves with the first token posted by the embedding app. */
export function tokenFromHost(key: string): Promise<string> {
  return new Promise((resolve) => {
    window.addEventListener("message", (message: MessageEvent) => {
      // Only from the app that embeds this page (its parent frame, which frame-ancestors
      // limits to allowed origins) or from the page's own window (a native web view's
      // injected script): never from an opener or another frame.
      if (message.source !== window.parent && message.source !== window) return;
      const data = message.data as { type?: unknown; token?: unknown } | null;
      if (data && data.type === MESSAGE_TYPE && typeof data.token === "string" && data.token) {
        sessionStorage.setItem(key, data.token);
        resolve(data.token);
      }
    });
  });
}

/** The token's claims, for display only (the server verifies it; the page cannot). */
export function claims(token: string): { sub?: string; name?: string; role?: string; exp?: number } {
  try {
    const part = token.split(".")[1] ?? "";
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as { sub?: string };
  } catch {
    return {};
  }
}
