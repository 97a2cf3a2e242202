"""The `barrage` command: one home for the server's and the clients' subcommands.

Both sides may be imported from here (each subcommand imports what it runs, when it
runs), so that `server` never imports `clients` and `clients` never imports `server`.
`trace` lives here too: it reads the trace files the server writes (server/telemetry/otlpjson.py).
"""
