// The viewer page, /live/ROOM: a phone-sized live room. Video placeholder with comments
// flying over it (danmaku), like button with the room's total, the pinned product, the
// flash-sale countdown, poll and lottery, a comment box. Resumes after any network drop
// from the last cursor (RoomLink), so nothing is missed and nothing shows twice.

import { compact, el, money, who } from "./format.js";
import {
  BarrageError,
  PayloadSchema,
  Priority,
  create,
  linkState,
  millisOf as millis,
  pageClient,
  type BarrageClient,
  type Event,
  type FlashSaleStarted,
  type LotteryStarted,
  type Payload,
  type PollStarted,
  type Product,
  type RoomSnapshot,
} from "./sdk.js";
import { tokenFromFragment, tokenFromHost } from "./token.js";

const roomId = decodeURIComponent(location.pathname.replace(/^\/live\//, "").replace(/\/$/, ""));
const $ = (id: string): HTMLElement => document.getElementById(id) as HTMLElement;
const FEED_LIMIT = 200;
const DANMAKU_LANES = 6;

let likeTotal = 0n;
let product: Product | undefined;
let sale: FlashSaleStarted | undefined;
let saleStock: bigint | undefined;
let poll: PollStarted | undefined;
let tally: bigint[] = [];
let lottery: LotteryStarted | undefined;
let client: BarrageClient | undefined;
const laneFree: number[] = new Array<number>(DANMAKU_LANES).fill(0);

function renderProduct(): void {
  const card = $("product");
  card.replaceChildren();
  card.hidden = product === undefined;
  if (!product) return;
  const stock = saleStock ?? product.stock;
  card.append(
    el("div", { class: "thumb" }, product.title.slice(0, 1)),
    el(
      "div",
      { class: "info" },
      el("div", { class: "title", id: "product-title" }, product.title),
      el("div", { class: "price" }, money(product.price)),
      el("div", { class: "stock" }, stock > 0n ? `库存 stock ${stock}` : ""),
    ),
    el("button", { class: "buy", type: "button" }, "Buy"),
  );
  card.dataset["productId"] = product.productId;
}

function renderSale(): void {
  const banner = $("sale");
  banner.hidden = sale === undefined;
  if (!sale) return;
  const left = Math.max(0, millis(sale.endTime) - Date.now());
  const s = Math.ceil(left / 1000);
  $("sale-title").textContent = `⚡ ${sale.product?.title ?? "Flash sale"} ${money(sale.product?.price)}`;
  $("sale-countdown").textContent = left > 0 ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}` : "ended";
  $("sale-stock").textContent = `${saleStock ?? sale.stock} left`;
}

function renderPoll(): void {
  const card = $("poll");
  card.hidden = poll === undefined;
  if (!poll) return;
  const current = poll;
  const total = tally.reduce((a, b) => a + b, 0n);
  card.replaceChildren(el("div", { class: "card-title" }, `📊 ${current.question}`));
  current.options.forEach((option, index) => {
    const count = tally[index] ?? 0n;
    const share = total > 0n ? Number((count * 100n) / total) : 0;
    const row = el("button", { class: "option", type: "button" }, el("span", {}, option), el("span", { class: "count" }, `${count}`));
    row.style.setProperty("--share", `${share}%`); // CSSOM: the CSP refuses style attributes
    row.addEventListener("click", () => {
      post(create(PayloadSchema, { kind: { case: "pollVote", value: { pollId: current.pollId, option: index } } }));
    });
    card.append(row);
  });
}

function renderLottery(winners?: string[]): void {
  const card = $("lottery");
  card.hidden = lottery === undefined;
  if (!lottery) return;
  const current = lottery;
  card.replaceChildren(el("div", { class: "card-title" }, `🎁 ${current.prize} ×${current.winnersCount}`));
  if (winners) {
    card.append(el("div", { class: "winners" }, winners.length ? `Winners: ${winners.join(", ")}` : "No winners"));
  } else {
    const join = el("button", { class: "join", type: "button" }, current.keyword ? `Comment “${current.keyword}” to enter` : "Enter");
    join.addEventListener("click", () => {
      post(create(PayloadSchema, { kind: { case: "lotteryEntry", value: { lotteryId: current.lotteryId } } }));
    });
    card.append(join);
  }
}

function notice(event: Event, text: string): void {
  const line = el("li", { class: "notice", "data-event-id": event.eventId, "data-kind": event.payload?.kind.case ?? "" }, text);
  feed(line);
}

function feed(line: HTMLElement): void {
  const list = $("feed");
  list.append(line);
  while (list.childElementCount > FEED_LIMIT) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
}

function danmaku(eventId: string, text: string, own: boolean): void {
  const layer = $("danmaku");
  // The lane whose last bullet left the right edge longest ago, so bullets do not overlap.
  const now = performance.now();
  let lane = 0;
  for (let i = 1; i < DANMAKU_LANES; i++) if (laneFree[i] < laneFree[lane]) lane = i;
  laneFree[lane] = Math.max(now, laneFree[lane]) + 400 + text.length * 90;
  const item = el("div", { class: own ? "bullet own" : "bullet", "data-event-id": eventId }, text);
  item.style.top = `${8 + lane * 30}px`; // CSSOM: the CSP refuses style attributes
  item.addEventListener("animationend", () => item.remove());
  layer.append(item);
}

function applySnapshot(snapshot: RoomSnapshot): void {
  $("room-title").textContent = snapshot.title || roomId;
  product = snapshot.pinnedProduct;
  sale = snapshot.flashSale;
  saleStock = undefined;
  poll = snapshot.poll;
  tally = snapshot.pollTally?.counts ?? [];
  lottery = snapshot.lottery;
  likeTotal = snapshot.likeTotal;
  $("likes").textContent = compact(likeTotal);
  $("viewers").textContent = `${compact(snapshot.viewerCount)} watching`;
  renderProduct();
  renderSale();
  renderPoll();
  renderLottery();
}

function onEvent(event: Event): void {
  const kind = event.payload?.kind;
  if (!kind) return;
  switch (kind.case) {
    case "comment": {
      const line = el(
        "li",
        { class: kind.value.question ? "comment question" : "comment", "data-event-id": event.eventId },
        el("b", {}, `${who(event.sender)}: `),
        kind.value.text,
      );
      feed(line);
      danmaku(event.eventId, kind.value.text, event.sender?.userId === myUserId);
      return;
    }
    case "likeBurst":
      likeTotal = kind.value.total;
      $("likes").textContent = compact(likeTotal);
      return;
    case "viewerCount":
      $("viewers").textContent = `${compact(kind.value.viewers)} watching`;
      return;
    case "productPinned":
      product = kind.value.product;
      renderProduct();
      notice(event, `📌 ${product?.title ?? ""} ${money(product?.price)}`);
      return;
    case "productUnpinned":
      if (product?.productId === kind.value.productId) product = undefined;
      renderProduct();
      notice(event, "📌 product unpinned");
      return;
    case "productUpdated":
      if (product && product.productId === kind.value.productId) {
        if (kind.value.price) product.price = kind.value.price;
        if (kind.value.stock !== undefined) product.stock = kind.value.stock;
        renderProduct();
      }
      return;
    case "flashSaleStarted":
      sale = kind.value;
      saleStock = undefined;
      renderSale();
      notice(event, `⚡ Flash sale: ${sale.product?.title ?? ""} ${money(sale.product?.price)}`);
      return;
    case "flashSaleStock":
      if (sale?.saleId === kind.value.saleId) saleStock = kind.value.stock;
      renderSale();
      return;
    case "flashSaleEnded":
      notice(event, kind.value.soldOut ? "⚡ Flash sale sold out" : `⚡ Flash sale ended (${kind.value.sold} sold)`);
      sale = undefined;
      renderSale();
      return;
    case "pollStarted":
      poll = kind.value;
      tally = [];
      renderPoll();
      notice(event, `📊 Poll: ${poll.question}`);
      return;
    case "pollTally":
    case "pollEnded":
      if (poll?.pollId === kind.value.pollId) tally = kind.value.counts;
      renderPoll();
      if (kind.case === "pollEnded") notice(event, `📊 Poll ended: ${poll?.options.map((o, i) => `${o} ${tally[i] ?? 0}`).join(" · ")}`);
      return;
    case "lotteryStarted":
      lottery = kind.value;
      renderLottery();
      notice(event, `🎁 Lottery: ${lottery.prize}`);
      return;
    case "lotteryDrawn":
      renderLottery(kind.value.winnerUserIds);
      notice(event, `🎁 Winners: ${kind.value.winnerUserIds.join(", ") || "none"}`);
      return;
    case "announcement":
      notice(event, `📣 ${kind.value.text}`);
      return;
    case "messageDeleted": // from the feed and from the video
      for (const node of document.querySelectorAll(`[data-event-id="${CSS.escape(kind.value.eventId)}"]`)) node.remove();
      return;
    case "catalogueRegistered": // for insights and the console, not for viewers
      return;
    case "userMuted": {
      const until = new Date(millis(kind.value.until)).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      notice(event, kind.value.userId === myUserId ? `🔇 You are muted until ${until}` : `🔇 ${kind.value.userId} muted`);
      return;
    }
    case "userBanned":
      notice(event, `⛔ ${kind.value.userId} removed from the room`);
      return;
    case "slowMode": {
      const seconds = Number(kind.value.minInterval?.seconds ?? 0n);
      notice(event, seconds ? `🐢 Slow mode: one comment every ${seconds} s` : "🐢 Slow mode off");
      return;
    }
    case "commentPinned":
      notice(event, `📌 ${who(kind.value.author)}: ${kind.value.text}`);
      return;
    case "roomClosed":
      notice(event, "The live has ended");
      return;
    default:
      if (event.priority === Priority.CRITICAL) notice(event, kind.case ?? "");
  }
}

let myUserId = "";

/** The server's words for a refusal ("you are muted in this room"), not the SDK's codes. */
function describe(error: unknown): string {
  if (error instanceof BarrageError) return error.detail || error.reason || error.message;
  return error instanceof Error ? error.message : String(error);
}

/** Post into the room; a refusal (muted, slow mode, rate limited...) is shown in the feed. */
function post(payload: Payload): void {
  client?.sendPayload(roomId, payload).catch((error: unknown) => {
    feed(el("li", { class: "notice error" }, `⚠ ${describe(error)}`));
  });
}

async function start(token: string): Promise<void> {
  const link = $("link");
  client = pageClient(token, (state) => {
    link.dataset["state"] = linkState(state);
  });
  (window as unknown as { barrage: unknown }).barrage = { client };
  try {
    const welcome = await client.connect();
    myUserId = welcome.user?.userId ?? "";
    const subscription = await client.join(roomId, { historyLimit: 50 });
    if (subscription.snapshot) applySnapshot(subscription.snapshot);
    subscription.listen((item) => {
      if (item.type === "event") onEvent(item.event);
      else if (item.type === "gap" && item.snapshot) applySnapshot(item.snapshot); // could not resume: start over
      else if (item.type === "ended") {
        link.dataset["state"] = "stopped";
        if (item.why !== "room_closed") feed(el("li", { class: "notice error" }, item.text || item.error?.message || item.why));
      }
    });
  } catch (error) {
    link.dataset["state"] = "stopped";
    $("room-title").textContent = error instanceof Error ? error.message : String(error);
  }
}

function wire(): void {
  $("like").addEventListener("click", () => {
    likeTotal += 1n; // shown at once; the room's total corrects it with the next burst
    $("likes").textContent = compact(likeTotal);
    post(create(PayloadSchema, { kind: { case: "like", value: { count: 1 } } }));
  });
  const form = $("compose") as HTMLFormElement;
  form.addEventListener("submit", (submit) => {
    submit.preventDefault();
    const input = $("text") as HTMLInputElement;
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    post(create(PayloadSchema, { kind: { case: "comment", value: { text } } }));
  });
  setInterval(renderSale, 250); // the countdown
}

wire();
$("room-title").textContent = roomId;
const token = tokenFromFragment("barrage.live.token");
if (token) void start(token);
else void tokenFromHost("barrage.live.token").then(start);
