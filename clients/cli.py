"""The `barrage` command: serve, token, and client tools built on the SDK."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> int:
    from server.app import run
    from server.config import Settings

    overrides = {
        key: value
        for key, value in {
            "listen": args.listen,
            "log": args.log,
            "jwt_secret": args.jwt_secret,
            "jwt_public_key": args.jwt_public_key,
            "jwt_jwks_url": args.jwt_jwks_url,
            "jwt_issuer": args.jwt_issuer,
            "jwt_audience": args.jwt_audience,
            "batch_interval_ms": args.batch_interval_ms,
            "node_id": args.node_id,
            "log_level": args.log_level,
        }.items()
        if value is not None
    }
    run(Settings(**overrides))
    return 0


def _token(args: argparse.Namespace) -> int:
    from server.auth import issue_dev_token
    from server.config import DEV_SECRET

    secret = args.secret or os.environ.get("BARRAGE_JWT_SECRET") or DEV_SECRET
    print(issue_dev_token(secret, user_id=args.user, role=args.role, name=args.name, ttl_s=args.ttl))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="barrage", description="Barrage: real-time messaging for live-shopping rooms")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a gateway node")
    serve.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:50051)")
    serve.add_argument("--log", help="room log URL (default embedded:./data; or kafka://HOST:PORT/TOPIC)")
    serve.add_argument("--jwt-secret", help="HS256 secret for development tokens (env BARRAGE_JWT_SECRET)")
    serve.add_argument("--jwt-public-key", help="PEM public key of the identity provider (production)")
    serve.add_argument("--jwt-jwks-url", help="JWKS URL of the identity provider (production)")
    serve.add_argument("--jwt-issuer", help="required iss claim")
    serve.add_argument("--jwt-audience", help="required aud claim")
    serve.add_argument("--batch-interval-ms", type=float, help="per-room coalescing window for busy rooms")
    serve.add_argument("--node-id", help="node name in logs and traces")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING")
    serve.set_defaults(func=_serve)

    token = commands.add_parser("token", help="print a DEVELOPMENT token (HS256, shared secret)")
    token.add_argument("--user", required=True, help="user id (the token's subject)")
    token.add_argument("--name", help="display name")
    token.add_argument("--role", default="viewer", choices=["viewer", "host", "moderator", "service", "bot"])
    token.add_argument("--ttl", type=float, default=24 * 3600, help="lifetime in seconds")
    token.add_argument("--secret", help="signing secret (default: BARRAGE_JWT_SECRET or the built-in dev secret)")
    token.set_defaults(func=_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
