"""Barrage: real-time messaging for live-shopping rooms (README.md).

One installed namespace. The repository keeps its folders at the top (server/,
clients/, cli/, loadtest/, shoplang/, and the API's generated code in protos/barrage/v1/);
this directory names them as subpackages through symbolic links, so that the source tree,
an editable install and a wheel all import them the same way:

    barrage.v1        the API: generated messages and gRPC stubs (protos/barrage/v1)
    barrage.clients   the Python SDK (barrage.clients.sdk), the assistant, client commands
    barrage.server    the node
    barrage.cli       the `barrage` command
    barrage.loadtest  the load generator
    barrage.shoplang  shopping language shared by the assistant and insights
"""
