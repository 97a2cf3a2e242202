"""scripts/dev/rename_namespace.py: first-party modules spelled under `barrage`, run after any merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.dev.rename_namespace import rename


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for folder in ("server/core", "server/log", "clients/sdk", "cli", "loadtest", "shoplang"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    for module in ("server/app.py", "server/core/hub.py", "cli/main.py", "shoplang/lang.py", "loadtest/runner.py"):
        (tmp_path / module).write_text("")
    return tmp_path


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("from server.core.hub import Hub", "from barrage.server.core.hub import Hub"),
        ("import server.core.hub as hub", "import barrage.server.core.hub as hub"),
        ("from server.core import hub, policy", "from barrage.server.core import hub, policy"),
        ("from server import app", "from barrage.server import app"),
        ("    import loadtest", "    import barrage.loadtest"),
        ("from clients.sdk import Client", "from barrage.clients.sdk import Client"),
        ('setattr("server.core.hub.time", fake)', 'setattr("barrage.server.core.hub.time", fake)'),
        ("python -m server --listen :0", "python -m barrage.server --listen :0"),
        ('[sys.executable, "-m", "cli", "tail"]', '[sys.executable, "-m", "barrage.cli", "tail"]'),
        ("python -m loadtest.runner", "python -m barrage.loadtest.runner"),
        ("the reader (`shoplang.lang`)", "the reader (`barrage.shoplang.lang`)"),
        ("from server.log import base", "from barrage.server.log import base"),
        ("import server.log", "import barrage.server.log"),
        ("ERROR server.log.embedded: write failed", "ERROR barrage.server.log.embedded: write failed"),
    ],
)
def test_module_names_move_under_the_namespace(tree: Path, before: str, after: str) -> None:
    assert rename(before, tree) == after


@pytest.mark.parametrize(
    "text",
    [
        "from barrage.server.core.hub import Hub",  # already renamed: idempotent
        "python -m barrage.server",
        "from barrage.v1 import event_pb2",
        "server.start()",  # a variable named like a package, with no such module
        "self.server.core",  # an attribute
        "see server/core/hub.py",  # a file path: the folders did not move
        "moderation_hook_server.py and my-server.core",
        "the clients. Then",
        "await server.wait_for_termination()",
        'open(out / "server.log", "ab")',  # a file named like the package server/log
    ],
)
def test_everything_else_is_left_alone(tree: Path, text: str) -> None:
    assert rename(text, tree) == text


def test_a_second_run_changes_nothing(tree: Path) -> None:
    text = 'from server.app import run\nimport server.core.hub\nsubprocess.run(["python", "-m", "server"])\n'
    once = rename(text, tree)
    assert once != text
    assert rename(once, tree) == once
