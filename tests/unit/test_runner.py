"""`notip.runner`: exit codes from outcomes (literal inputs), and signal handling in
real child processes running small mains."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from notip.config import ConfigError
from notip.runner import EXIT_CONFIG, EXIT_CRASH, EXIT_OK, exit_code

# -- exit codes ------------------------------------------------------------------------


def test_exit_code_of_a_normal_return() -> None:
    assert exit_code(None, signalled=False) == EXIT_OK


def test_config_error_anywhere_in_a_group_is_exit_2() -> None:
    nested = ExceptionGroup("loop", [ExceptionGroup("nursery", [ConfigError(["X is required"])])])
    assert exit_code(nested, signalled=False) == EXIT_CONFIG
    assert exit_code(ConfigError(["X"]), signalled=True) == EXIT_CONFIG


def test_keyboard_interrupt_wrapped_in_groups_is_a_graceful_stop() -> None:
    wrapped = BaseExceptionGroup("loop", [BaseExceptionGroup("nursery", [KeyboardInterrupt()])])
    assert exit_code(wrapped, signalled=False) == EXIT_OK


def test_a_crash_is_exit_1_even_next_to_a_signal() -> None:
    assert exit_code(RuntimeError("boom"), signalled=False) == EXIT_CRASH
    group = BaseExceptionGroup("n", [KeyboardInterrupt(), ValueError("bad")])
    assert exit_code(group, signalled=True) == EXIT_CRASH


def test_custom_config_errors() -> None:
    class SeedError(ValueError):
        pass

    assert exit_code(SeedError("x"), signalled=False, config_errors=(SeedError,)) == EXIT_CONFIG
    assert exit_code(SeedError("x"), signalled=False) == EXIT_CRASH


# -- child processes -------------------------------------------------------------------

PRELUDE = """
import sys, trio
from notip import logs
from notip.config import ConfigError
from notip.runner import run_daemon
logs.setup()
"""

BUSY_WITH_SLOW_CLEANUP = """
async def main():
    try:
        print("ready", flush=True)
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            print("cleaning up", flush=True)
            await trio.sleep(CLEANUP_S)
            print("clean", flush=True)
sys.exit(run_daemon("demo", lambda: main))
"""


def start(tmp_path: Path, body: str, **consts: object) -> subprocess.Popen[str]:
    script = tmp_path / "daemon.py"
    header = "".join(f"{k} = {v!r}\n" for k, v in consts.items())
    script.write_text(textwrap.dedent(PRELUDE) + header + textwrap.dedent(body))
    return subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_first_signal_stops_gracefully_with_exit_0(tmp_path: Path, sig: signal.Signals) -> None:
    proc = start(tmp_path, BUSY_WITH_SLOW_CLEANUP, CLEANUP_S=0.2)
    assert read_line(proc) == "ready"
    proc.send_signal(sig)
    code, out, err = finish(proc)
    assert code == 0, err
    assert out.split() == ["cleaning", "up", "clean"]  # the clean-up ran to its end
    lines = [json.loads(line) for line in err.splitlines()]
    assert [(e["msg"], e["signal"]) for e in lines] == [("signal received; stopping", sig.name)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_second_signal_forces_the_exit(tmp_path: Path, sig: signal.Signals) -> None:
    proc = start(tmp_path, BUSY_WITH_SLOW_CLEANUP, CLEANUP_S=3600)
    assert read_line(proc) == "ready"
    proc.send_signal(sig)
    assert read_line(proc) == "cleaning up"
    proc.send_signal(sig)
    code, out, err = finish(proc)
    assert code == 128 + sig
    assert "clean\n" not in out
    assert "second signal during shutdown" in err and "Traceback" not in err


def test_a_crash_is_one_structured_line_and_exit_1(tmp_path: Path) -> None:
    proc = start(
        tmp_path,
        """
        async def main():
            async with trio.open_nursery() as n:
                n.start_soon(trio.sleep_forever)
                raise RuntimeError("disk on fire")
        sys.exit(run_daemon("demo", lambda: main))
        """,
    )
    code, _, err = finish(proc)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and entry["msg"] == "command crashed"
    assert entry["command"] == "demo" and entry["error"] == "RuntimeError: disk on fire"


def test_configuration_errors_exit_2_with_one_message(tmp_path: Path) -> None:
    proc = start(
        tmp_path,
        """
        def prepare():
            raise ConfigError(["A is required", "B='x': not an integer"])
        sys.exit(run_daemon("demo", prepare))
        """,
    )
    code, _out, err = finish(proc)
    assert code == 2
    assert err == "notip demo: invalid configuration: A is required; B='x': not an integer\n"


def test_configuration_error_raised_by_the_running_service_exits_2(tmp_path: Path) -> None:
    proc = start(
        tmp_path,
        """
        async def main():
            async with trio.open_nursery() as n:
                n.start_soon(trio.sleep_forever)
                raise ConfigError(["SEED conflicts with the store"])
        sys.exit(run_daemon("demo", lambda: main))
        """,
    )
    code, _, err = finish(proc)
    assert code == 2
    assert err == "notip demo: invalid configuration: SEED conflicts with the store\n"


def test_signal_while_reading_the_configuration_stops_before_starting(tmp_path: Path) -> None:
    proc = start(
        tmp_path,
        """
        import os, signal
        async def main():
            print("started", flush=True)
        def prepare():
            os.kill(os.getpid(), signal.SIGTERM)  # lands while the settings are read
            return main
        sys.exit(run_daemon("demo", prepare))
        """,
    )
    code, out, err = finish(proc)
    assert (code, out, err) == (0, "", "")


def test_main_returning_is_exit_0(tmp_path: Path) -> None:
    proc = start(
        tmp_path,
        """
        async def main():
            await trio.sleep(0)
            print("done", flush=True)
        sys.exit(run_daemon("demo", lambda: main))
        """,
    )
    assert finish(proc) == (0, "done\n", "")
