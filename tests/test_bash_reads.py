"""bash_reads on any text: it ends, and says either what a run reads or (nesting too deep to read) why not.
What it reads is checked against bash itself in test_bert_hostile.py and test_bert_upstream.py; here only that no
input makes it hang or raise anything else (each example runs under an alarm)."""

from __future__ import annotations

import signal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_mlperf.catalog import bash_reads, nvidia_bert

PIECES = [*"ab$={}()[]'\"`\\#;&|<>-:?+!\n \t"] + [
    "if ",
    "then ",
    "fi",
    "elif ",
    "else ",
    "for x in y; ",
    "do ",
    "done",
    "case x in",
    "esac",
    "f() { ",
    "function g { ",
    "<<EOF\n",
    "\nEOF\n",
    "<<'Q'\n",
    "\nQ\n",
    "<<-",
    "<<",
    "$((",
    "))",
    "${",
    "$(",
    "<(",
    "=(",
]


class _Hang(Exception):
    pass


def _alarm(*_):
    raise _Hang


def _within(text: str, seconds: int = 5) -> bash_reads.Analysis | None:
    """analyze(text) under an alarm: None when it says the nesting is too deep; a test failure when it hangs."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return bash_reads.analyze(text)
    except _Hang:
        pytest.fail(f"bash_reads.analyze did not end on {text!r}")
    except ValueError as exc:
        assert "nested too deeply" in str(exc)
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
def test_any_text_is_read_to_its_end(text):
    found = _within(text)
    assert found is None or all(bash_reads.NAME.fullmatch(name) for name in found.required)


def test_a_here_document_operator_at_the_end_of_the_text_ends():
    """`<<` with nothing after it once looped for ever (an empty string is `in` any string)."""
    found = _within("cat <<")
    assert found is not None and found.required == {}


def test_substitutions_nested_too_deeply_are_a_script_error(tmp_path):
    deep = "echo " + "$(echo " * 2000 + ")" * 2000 + "\n"
    (tmp_path / "run.sub").write_text(deep)
    with pytest.raises(nvidia_bert.ScriptError, match=r"run\.sub: command substitutions nested too deeply"):
        nvidia_bert.requirements(tmp_path, "run.sub")
