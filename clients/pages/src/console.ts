// The operator console, /console (中控台): sign in with a token, pick a room, watch its
// comments (questions highlighted) and top question groups, pin products from the room's
// catalogue, start a flash sale, poll or lottery, moderate (mute, ban, delete, slow mode),
// and follow viewers, comments per second and product interest live (WatchInsights).

import { barChart, lineChart } from "./chart.js";
import { compact, el, money, who } from "./format.js";
import {
  Direction,
  PayloadSchema,
  RoomState,
  create,
  createApi,
  linkState,
  millisOf,
  pageClient,
  reasonOf,
  timestamp,
  type Api,
  type BarrageClient,
  type CatalogueProduct,
  type Event,
  type Payload,
  type Product,
  type RoomInsights,
  type RoomSnapshot,
} from "./sdk.js";
import { claims } from "./token.js";

const TOKEN_KEY = "barrage.console.token"; // sessionStorage: this tab only, never the URL
const FEED_LIMIT = 300;
const CATALOGUE_PAGES = 5;
const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

let token = "";
let api: Api | undefined;
let client: BarrageClient | undefined;
let watch: AbortController | undefined;
let roomId = "";
let pinned: Product | undefined;
let catalogue: CatalogueProduct[] = [];
let insights: RoomInsights | undefined;
let liveViewers = 0n;

// ------------------------------------------------------------------ sign in

function signIn(value: string): void {
  token = value.trim();
  if (!token) return;
  leaveRoom();
  client?.close(); // signing in again (another token) replaces the stream
  sessionStorage.setItem(TOKEN_KEY, token);
  api = createApi({ baseUrl: location.origin, token });
  client = pageClient(token, (state) => {
    $("link").dataset["state"] = linkState(state);
  });
  (window as unknown as { barrage: unknown }).barrage = { client };
  const who_ = claims(token);
  $("whoami").textContent = `${who_.name ?? who_.sub ?? "?"} · ${who_.role ?? ""}`;
  document.body.dataset["signedIn"] = "yes";
  void loadRooms();
}

function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  leaveRoom();
  client?.close();
  client = undefined;
  token = "";
  document.body.dataset["signedIn"] = "no";
  $("rooms").replaceChildren();
}

// ------------------------------------------------------------------ rooms

async function loadRooms(): Promise<void> {
  if (!api) return;
  const list = $("rooms");
  try {
    const rooms = [];
    let pageToken = "";
    for (let page = 0; page < 10; page++) {
      const answer = await api.admin.listRooms({ pageSize: 200, pageToken });
      rooms.push(...answer.rooms);
      pageToken = answer.nextPageToken;
      if (!pageToken) break;
    }
    list.replaceChildren(
      ...rooms.map((room) => {
        const item = el(
          "li",
          { "data-room-id": room.roomId, class: room.state === RoomState.CLOSED ? "closed" : "" },
          el("div", { class: "room-title" }, room.title || room.roomId),
          el("div", { class: "room-id" }, room.roomId + (room.state === RoomState.CLOSED ? " · closed" : "")),
        );
        item.addEventListener("click", () => openRoom(room.roomId));
        return item;
      }),
    );
    if (rooms.length === 0) list.append(el("li", { class: "empty" }, "No rooms for this token"));
  } catch (error) {
    list.replaceChildren(el("li", { class: "error" }, `${reasonOf(error) || String(error)}`));
  }
}

function leaveRoom(): void {
  if (roomId) void client?.leave(roomId);
  watch?.abort();
  roomId = "";
  document.body.dataset["room"] = "";
}

function openRoom(id: string): void {
  leaveRoom();
  roomId = id;
  document.body.dataset["room"] = id;
  for (const item of $("rooms").children) item.classList.toggle("active", (item as HTMLElement).dataset["roomId"] === id);
  $("room-name").textContent = id;
  $("feed").replaceChildren();
  $("questions").replaceChildren(el("li", { class: "empty" }, "No questions yet"));
  pinned = undefined;
  insights = undefined;
  samples = [];
  void follow(id);
  void loadCatalogue(id);
  watchInsights(id);
  drawCharts();
}

/** The room stream: its snapshot, then every event in order (resumed after any drop). */
async function follow(id: string): Promise<void> {
  if (!client) return;
  try {
    await client.connect();
    const subscription = await client.join(id, { historyLimit: 100 });
    if (id !== roomId) return;
    if (subscription.snapshot) applySnapshot(subscription.snapshot);
    subscription.listen((item) => {
      if (id !== roomId) return;
      if (item.type === "event") onEvent(item.event);
      else if (item.type === "gap" && item.snapshot) applySnapshot(item.snapshot);
      else if (item.type === "ended" && item.why !== "left") toast(item.text || item.error?.message || item.why, true);
    });
  } catch (error) {
    toast(error instanceof Error ? error.message : String(error), true);
  }
}

function applySnapshot(snapshot: RoomSnapshot): void {
  $("room-name").textContent = snapshot.title || snapshot.roomId;
  pinned = snapshot.pinnedProduct;
  liveViewers = snapshot.viewerCount;
  $("viewers-now").textContent = compact(liveViewers);
  $("slow").querySelector("input")!.value = String(Number(snapshot.slowMode?.seconds ?? 0n));
  renderCatalogue();
}

// ------------------------------------------------------------------ live feed

function onEvent(event: Event): void {
  const kind = event.payload?.kind;
  if (!kind) return;
  switch (kind.case) {
    case "comment":
      addComment(event, kind.value.text, kind.value.question);
      return;
    case "viewerCount":
      liveViewers = kind.value.viewers;
      $("viewers-now").textContent = compact(liveViewers);
      return;
    case "productPinned":
      pinned = kind.value.product;
      renderCatalogue();
      notice(event, `📌 pinned ${pinned?.title ?? ""}`);
      return;
    case "productUnpinned":
      if (pinned?.productId === kind.value.productId) pinned = undefined;
      renderCatalogue();
      notice(event, `📌 unpinned ${kind.value.productId}`);
      return;
    case "catalogueRegistered":
      catalogue = kind.value.products;
      renderCatalogue();
      return;
    case "messageDeleted": {
      const line = document.querySelector(`#feed [data-event-id="${CSS.escape(kind.value.eventId)}"]`);
      line?.classList.add("deleted");
      return;
    }
    case "flashSaleStarted":
      notice(event, `⚡ flash sale ${kind.value.product?.title ?? ""} × ${kind.value.stock}`);
      return;
    case "flashSaleEnded":
      notice(event, `⚡ flash sale ended, ${kind.value.sold} sold`);
      return;
    case "pollStarted":
      notice(event, `📊 poll: ${kind.value.question}`);
      return;
    case "pollEnded":
      notice(event, `📊 poll ended: ${kind.value.counts.join(" / ")}`);
      return;
    case "lotteryStarted":
      notice(event, `🎁 lottery: ${kind.value.prize}`);
      return;
    case "lotteryDrawn":
      notice(event, `🎁 winners: ${kind.value.winnerUserIds.join(", ") || "none"}`);
      return;
    case "userMuted":
      notice(event, `🔇 muted ${kind.value.userId}`);
      return;
    case "userBanned":
      notice(event, `⛔ banned ${kind.value.userId}`);
      return;
    case "slowMode":
      notice(event, `🐢 slow mode ${Number(kind.value.minInterval?.seconds ?? 0n)} s`);
      return;
    case "announcement":
      notice(event, `📣 ${kind.value.text}`);
      return;
    default:
      return;
  }
}

function addComment(event: Event, text: string, question: boolean): void {
  const user = event.sender?.userId ?? "";
  const actions = el("span", { class: "actions" });
  const action = (label: string, title: string, payload: () => Payload): void => {
    const button = el("button", { type: "button", title, "data-action": label }, label);
    button.addEventListener("click", () => post(payload()));
    actions.append(button);
  };
  action("mute", "mute 10 minutes", () =>
    create(PayloadSchema, { kind: { case: "userMuted", value: { userId: user, until: timestamp(Date.now() + 600_000) } } }),
  );
  action("ban", "ban from the room", () => create(PayloadSchema, { kind: { case: "userBanned", value: { userId: user } } }));
  action("delete", "delete this message", () =>
    create(PayloadSchema, { kind: { case: "messageDeleted", value: { eventId: event.eventId } } }),
  );
  const line = el(
    "li",
    { class: question ? "comment question" : "comment", "data-event-id": event.eventId, "data-user-id": user },
    question ? el("span", { class: "q" }, "?") : "",
    el("b", {}, who(event.sender)),
    el("span", { class: "text" }, text),
    actions,
  );
  feed(line);
}

function notice(event: Event, text: string): void {
  feed(el("li", { class: "notice", "data-event-id": event.eventId }, text));
}

function feed(line: HTMLElement): void {
  const list = $("feed");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 30;
  list.append(line);
  while (list.childElementCount > FEED_LIMIT) list.firstElementChild?.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// ------------------------------------------------------------------ actions

async function post(payload: Payload): Promise<void> {
  if (!client || !roomId) return;
  try {
    await client.sendPayload(roomId, payload);
    toast(`${payload.kind.case ?? "event"} sent`);
  } catch (error) {
    toast(error instanceof Error ? error.message : String(error), true);
  }
}

function toast(text: string, error = false): void {
  const box = $("toast");
  box.textContent = text;
  box.className = error ? "toast error" : "toast";
  box.hidden = false;
  clearTimeout((box as unknown as { timer?: number }).timer);
  (box as unknown as { timer?: number }).timer = window.setTimeout(() => (box.hidden = true), 3000);
}

function id(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}`;
}

function priceOf(input: HTMLInputElement): { amountMinor: bigint; currency: string } {
  return { amountMinor: BigInt(Math.round(Number(input.value || "0") * 100)), currency: "CNY" };
}

function productOf(productId: string): Product | undefined {
  const entry = catalogue.find((p) => p.productId === productId);
  const price = document.querySelector<HTMLInputElement>(`#catalogue [data-product-id="${CSS.escape(productId)}"] input`);
  if (!entry || !price) return undefined;
  return { productId, title: entry.names[0] ?? productId, price: priceOf(price), imageUrl: "", stock: 0n } as Product;
}

async function loadCatalogue(room: string): Promise<void> {
  // The catalogue is an event in the room's log (catalogue_registered, docs/insights.md):
  // the newest one wins, so read history backwards until one is found.
  catalogue = [];
  renderCatalogue();
  if (!api) return;
  let cursor = "";
  try {
    for (let page = 0; page < CATALOGUE_PAGES && room === roomId; page++) {
      const answer = await api.admin.listEvents({ roomId: room, cursor, direction: Direction.BACKWARD, pageSize: 200 });
      const found = answer.events.find((e) => e.payload?.kind.case === "catalogueRegistered");
      if (found?.payload?.kind.case === "catalogueRegistered") {
        if (catalogue.length === 0) catalogue = found.payload.kind.value.products;
        break;
      }
      cursor = answer.nextCursor;
      if (!cursor) break;
    }
  } catch (error) {
    toast(`catalogue: ${reasonOf(error) || String(error)}`, true);
  }
  renderCatalogue();
}

function renderCatalogue(): void {
  const list = $("catalogue");
  list.replaceChildren();
  $("pinned-now").textContent = pinned ? `${pinned.title} ${money(pinned.price)}` : "nothing pinned";
  if (catalogue.length === 0) list.append(el("li", { class: "empty" }, "No catalogue registered for this room"));
  for (const product of catalogue) {
    const isPinned = pinned?.productId === product.productId;
    const price = el("input", { type: "number", min: "0", step: "0.01", value: "99.00", "aria-label": "price" });
    const button = el("button", { type: "button", class: isPinned ? "unpin" : "pin" }, isPinned ? "Unpin" : "Pin");
    button.addEventListener("click", () => {
      if (isPinned) void post(create(PayloadSchema, { kind: { case: "productUnpinned", value: { productId: product.productId } } }));
      else {
        const card = productOf(product.productId);
        if (card) void post(create(PayloadSchema, { kind: { case: "productPinned", value: { product: card } } }));
      }
    });
    list.append(
      el(
        "li",
        { "data-product-id": product.productId, class: isPinned ? "pinned" : "" },
        el("span", { class: "name", title: product.names.join(" / ") }, product.names[0] ?? product.productId),
        price,
        button,
      ),
    );
  }
  const select = $<HTMLSelectElement>("sale-product");
  select.replaceChildren(...catalogue.map((p) => el("option", { value: p.productId }, p.names[0] ?? p.productId)));
}

function wireForms(): void {
  const value = (form: HTMLFormElement, name: string): string => (form.elements.namedItem(name) as HTMLInputElement).value.trim();
  const onSubmit = (formId: string, payload: (form: HTMLFormElement) => Payload | undefined): void => {
    const form = $<HTMLFormElement>(formId);
    form.addEventListener("submit", (submit) => {
      submit.preventDefault();
      const made = payload(form);
      if (made) void post(made);
    });
  };
  onSubmit("sale", (form) => {
    const productId = value(form, "product");
    const entry = catalogue.find((p) => p.productId === productId);
    if (!entry) return undefined;
    const now = Date.now();
    const product = { productId, title: entry.names[0] ?? productId, price: priceOf(form.elements.namedItem("price") as HTMLInputElement) };
    return create(PayloadSchema, {
      kind: {
        case: "flashSaleStarted",
        value: {
          saleId: id("sale"),
          product,
          stock: BigInt(Number(value(form, "stock")) || 1),
          limitPerUser: 1,
          startTime: timestamp(now),
          endTime: timestamp(now + (Number(value(form, "minutes")) || 1) * 60_000),
        },
      },
    });
  });
  onSubmit("poll", (form) => {
    const options = value(form, "options").split(/\n|,|，/).map((o) => o.trim()).filter(Boolean);
    return create(PayloadSchema, {
      kind: {
        case: "pollStarted",
        value: { pollId: id("poll"), question: value(form, "question"), options, endTime: timestamp(Date.now() + (Number(value(form, "minutes")) || 1) * 60_000) },
      },
    });
  });
  onSubmit("lottery", (form) =>
    create(PayloadSchema, {
      kind: {
        case: "lotteryStarted",
        value: {
          lotteryId: id("lottery"),
          prize: value(form, "prize"),
          winnersCount: Number(value(form, "winners")) || 1,
          keyword: value(form, "keyword"),
          endTime: timestamp(Date.now() + (Number(value(form, "minutes")) || 1) * 60_000),
        },
      },
    }),
  );
  onSubmit("slow", (form) =>
    create(PayloadSchema, { kind: { case: "slowMode", value: { minInterval: { seconds: BigInt(Number(value(form, "seconds")) || 0) } } } }),
  );
  onSubmit("announce", (form) => create(PayloadSchema, { kind: { case: "announcement", value: { text: value(form, "text") } } }));
}

// ------------------------------------------------------------------ insights

function watchInsights(room: string): void {
  if (!api) return;
  const controller = new AbortController();
  watch = controller;
  const run = async (attempt: number): Promise<void> => {
    try {
      const updates = api!.insights.watchInsights(
        { roomId: room, interval: { seconds: 2n }, recentBuckets: 30, options: { topQuestions: 8 } },
        { signal: controller.signal },
      );
      for await (const answer of updates) {
        insights = answer.insights;
        if (insights) sample(insights);
        renderQuestions();
        drawCharts();
        attempt = 0;
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      $("insights-state").textContent = reasonOf(error) || String(error);
    }
    if (!controller.signal.aborted) setTimeout(() => void run(attempt + 1), Math.min(10_000, 1000 * 2 ** attempt));
  };
  void run(0);
}

function renderQuestions(): void {
  const groups = insights?.questions ?? [];
  const list = $("questions");
  if (groups.length === 0) {
    list.replaceChildren(el("li", { class: "empty" }, "No questions yet"));
    return;
  }
  list.replaceChildren(
    ...groups.map((group) =>
      el(
        "li",
        { class: group.answered ? "answered" : "open", "data-group-id": group.groupId },
        el("span", { class: "count" }, `${group.count}`),
        el("span", { class: "example" }, group.example),
        el("span", { class: "meta" }, [group.intent, group.productId, `${group.askers} asked`, group.answered ? "answered" : ""].filter(Boolean).join(" · ")),
      ),
    ),
  );
}

interface Sample {
  at: number; // ms, the insights' as_of_time
  viewers: number;
  comments: number; // the room's running total
}

const SAMPLES = 90; // three minutes at one update every 2 s
let samples: Sample[] = [];

/** Each WatchInsights update is one point: viewers now, and comments per second since the last update. */
function sample(update: RoomInsights): void {
  const at = millisOf(update.asOfTime);
  const point = { at, viewers: Number(update.totals?.viewers ?? 0n), comments: Number(update.totals?.comments ?? 0n) };
  if (samples.length && at <= samples[samples.length - 1].at) return;
  samples = [...samples, point].slice(-SAMPLES);
}

function drawCharts(): void {
  const rates = samples.slice(1).map((p, i) => Math.max(0, (p.comments - samples[i].comments) / ((p.at - samples[i].at) / 1000)));
  lineChart($<HTMLCanvasElement>("chart-viewers"), samples.map((p) => p.viewers), "#2563eb", "");
  lineChart($<HTMLCanvasElement>("chart-comments"), rates, "#db2777", "/s");
  $("viewers-now").textContent = compact(samples.length ? samples[samples.length - 1].viewers : liveViewers);
  $("comments-now").textContent = rates.length ? rates[rates.length - 1].toFixed(1) : "0";
  const products = [...(insights?.products ?? [])]
    .map((p) => ({ label: p.title || p.productId, value: Number(p.mentions) + Number(p.questions) }))
    .filter((p) => p.value > 0)
    .sort((a, b) => b.value - a.value);
  barChart($<HTMLCanvasElement>("chart-products"), products, "#059669");
  $("insights-state").textContent = samples.length ? `as of ${new Date(samples[samples.length - 1].at).toLocaleTimeString()}` : "";
}

// ------------------------------------------------------------------ start

$<HTMLFormElement>("signin").addEventListener("submit", (submit) => {
  submit.preventDefault();
  signIn($<HTMLTextAreaElement>("token").value);
  $<HTMLTextAreaElement>("token").value = "";
});
$("signout").addEventListener("click", signOut);
$("refresh").addEventListener("click", () => void loadRooms());
wireForms();
window.addEventListener("resize", drawCharts);
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved);
else document.body.dataset["signedIn"] = "no";
