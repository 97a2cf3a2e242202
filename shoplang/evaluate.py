"""Score replies to an evaluation shop from their text alone.

    python -m barrage.shoplang.evaluate score evals/shops/groceries replies.jsonl [-v] [--check]

`replies.jsonl`: one JSON object a line, {"id": "<question id>", "reply": "<text>"}; an
optional line {"now_ms": <ms>} gives the time the replies were made (for the flash
sale's clock time and minutes left; default: now). See shoplang/evaluation.py for the
rules. The assistant's own runner is `python -m barrage.clients.assistant.shop_eval`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from barrage.shoplang.evaluation import Score, load_shop, score_replies, summary


def print_score(name: str, score: Score, verbose: bool) -> None:
    for verdict in score.verdicts:
        if verbose or not verdict.ok:
            mark = "ok  " if verdict.ok else "FAIL"
            print(f"{mark} {verdict.question.id} {verdict.question.q!r} -> {verdict.reply!r}")
            if verdict.why:
                print(f"       {'; '.join(verdict.why)}")
    print(summary(name, score))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m barrage.shoplang.evaluate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="score a file of replies")
    score.add_argument("set", type=Path, help="evaluation shop folder")
    score.add_argument("replies", type=Path, help="JSON lines {id, reply}")
    score.add_argument("-v", "--verbose", action="store_true")
    score.add_argument("--check", action="store_true", help="exit 1 when a bar is missed")
    args = parser.parse_args(argv)

    shop = load_shop(args.set)
    replies: dict[str, str] = {}
    now_ms = int(time.time() * 1000)
    for line in args.replies.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if "now_ms" in item:
            now_ms = int(item["now_ms"])
        if "id" in item:
            replies[str(item["id"])] = str(item.get("reply", ""))
    result = score_replies(shop, replies, now_ms)
    print_score(shop.name, result, args.verbose)
    return 1 if args.check and not result.passed() else 0


if __name__ == "__main__":
    sys.exit(main())
