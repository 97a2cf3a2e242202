// Small display helpers shared by both pages.

import type { Money, Sender } from "./sdk.js";

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child); // text is never parsed as HTML
  return node;
}

export function money(value: Money | undefined): string {
  if (!value) return "";
  const amount = Number(value.amountMinor) / 100;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: value.currency || "CNY" }).format(amount);
  } catch {
    return `${amount.toFixed(2)} ${value.currency}`;
  }
}

export function who(sender: Sender | undefined): string {
  return sender ? sender.displayName || sender.userId : "?";
}

export function compact(n: number | bigint): string {
  const value = Number(n);
  if (value >= 1e8) return `${(value / 1e8).toFixed(1)}亿`;
  if (value >= 1e4) return `${(value / 1e4).toFixed(1)}万`;
  return String(value);
}
