"""Bad input: property-based tests of every parser.

Each parser either returns a valid value or raises an RbeeError whose message names the field,
line or value; no other exception may escape to a user.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
from httpx_sse._decoders import SSEDecoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from rbee_daemons import sse
from rbee_daemons.auth import read_token_file
from rbee_daemons.errors import ConfigError, InvalidRequestError, RbeeError
from rbee_daemons.hive.app import load_hive_id
from rbee_daemons.hive.catalog import model_folder
from rbee_daemons.hive.refs import BundledRef, FileRef, HubRef, default_model_id, parse_model_ref
from rbee_daemons.http import read_json_object
from rbee_daemons.operations import ALL_OPERATIONS, InferOperation, parse_operation
from rbee_tui.cli import hives_conf
from rbee_tui.cli.client import QueenClient
from rbee_tui.cli.render import narration_line, sanitize
from tests.reliability.conftest import Scenario

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Terminal escapes and other control characters a hostile model or daemon could send.
HOSTILE_TEXT = st.lists(st.sampled_from(
    ["a", " ", "\x1b", "[", "2J", "]0;", "\x07", "\x9b", "\r", "\n", "\t", "\x00", "\x7f", "é"]),
    max_size=30).map("".join)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
FIELD_NAMES = st.sampled_from([*sorted({name for model in ALL_OPERATIONS.values()
                                        for name in model.model_fields}), "bogus"])
OPERATION_BODIES = st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6).flatmap(
    lambda body: st.sampled_from([*ALL_OPERATIONS, "nope", 5]).map(
        lambda name: {**body, "operation": name}))
FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(body=OPERATION_BODIES)
def check_operation_parser_never_escapes(body: dict[str, Any]) -> None:
    try:
        parsed = parse_operation(body, ALL_OPERATIONS)
    except InvalidRequestError as exc:
        assert exc.code in {"invalid_field", "unknown_operation", "missing_operation"}
        assert exc.message.endswith(".")
        if exc.code == "invalid_field" and "Invalid request:" not in exc.message:
            quoted = re.search(r"field '([^'.]+)", exc.message)
            assert quoted, exc.message
            model = ALL_OPERATIONS.get(str(body["operation"]))
            known = set(body) | set(model.model_fields if model else ())
            assert quoted.group(1) in known, exc.message
        return
    assert parsed.operation == body["operation"]


@FAST
@given(prompt=st.text(min_size=1, max_size=300).filter(lambda text: "\x00" not in text),
       max_tokens=st.integers(1, 32768), temperature=st.floats(0, 2))
def check_valid_infer_round_trips(prompt: str, max_tokens: int, temperature: float) -> None:
    body = {"operation": "infer", "prompt": prompt, "max_tokens": max_tokens,
            "temperature": temperature}

    parsed = parse_operation(body, ALL_OPERATIONS)

    assert isinstance(parsed, InferOperation)
    assert parsed.prompt == prompt
    assert parsed.max_tokens == max_tokens


def test_operation_parser_properties(scenario: Scenario) -> None:
    """Operations parser under random JSON"""
    scenario.did("Hypothesis fed 300 random JSON objects (any operation name, known and "
                 "unknown fields, any JSON values) to the operation parser, and 300 valid "
                 "`infer` bodies.")
    check_operation_parser_never_escapes()
    check_valid_infer_round_trips()
    scenario.saw("Every invalid body raised InvalidRequestError naming the field or "
                 "operation; every valid body parsed unchanged.")


REF_TEXT = st.one_of(
    st.text(max_size=80),
    st.builds(lambda org, repo, file: f"hf:{org}/{repo}:{file}",
              st.text(max_size=12), st.text(max_size=12),
              st.sampled_from(["a.gguf", "../x.gguf", "/etc/x.gguf", "d/../../x.gguf",
                               "..\\x.gguf", "x.bin", "a/b.gguf", "x\x00.gguf"])),
    st.builds(lambda path: f"file:{path}",
              st.sampled_from(["/tmp/a.gguf", "rel.gguf", "~/m.gguf", "/a/../../etc/x.gguf",
                               "/x.bin", ""])),
)


@FAST
@given(ref=REF_TEXT)
def check_model_ref_parser_never_escapes(ref: str) -> None:
    try:
        parsed = parse_model_ref(ref)
    except InvalidRequestError as exc:
        assert exc.code == "invalid_model_ref"
        assert repr(ref) in exc.message
        return
    if isinstance(parsed, HubRef):
        assert ".." not in Path(parsed.file).parts
        assert not parsed.file.startswith("/")
    if isinstance(parsed, FileRef):
        assert parsed.path.is_absolute()
    try:
        model_id = default_model_id(parsed)
    except InvalidRequestError:
        return
    assert isinstance(parsed, BundledRef) or ID_PATTERN.fullmatch(model_id), model_id


@FAST
@given(model_id=st.text(max_size=40))
def check_model_folder_stays_in_store(model_id: str) -> None:
    root = Path(tempfile.gettempdir()) / "rbee-models-root"
    try:
        folder = model_folder(root, model_id)
    except InvalidRequestError as exc:
        assert repr(model_id) in exc.message
        return
    assert folder.parent == root.resolve()


def test_model_ref_properties(scenario: Scenario) -> None:
    """Model refs and ids with path traversal"""
    scenario.did("Hypothesis fed random text and crafted `hf:` and `file:` refs "
                 "(`../`, absolute, backslash, NUL, wrong suffix) to the ref parser, and "
                 "random ids to the model store's folder function.")
    check_model_ref_parser_never_escapes()
    check_model_folder_stays_in_store()
    scenario.saw("Every bad ref raised invalid_model_ref quoting it; no parsed ref or id "
                 "resolves outside the model store.")


CONF_LINES = st.lists(st.one_of(
    st.sampled_from(["Host a", "Host b", "HostName 10.0.0.5", "User me", "Port 22",
                     "HivePort 7835", "Port x", "HivePort 70000", "Host", "InstallDir /opt/r",
                     "Bogus 1", "# comment", "", "HostName=h", "Host ../x"]),
    st.text(max_size=30)), max_size=12)


@FAST
@given(lines=CONF_LINES)
def check_hives_conf_parser_never_escapes(lines: list[str]) -> None:
    path = Path("/conf/hives.conf")
    try:
        hosts = hives_conf.parse("\n".join(lines), path)
    except ConfigError as exc:
        assert exc.message.startswith(f"{path}:"), exc.message
        return
    for alias, host in hosts.items():
        assert host.alias == alias
        assert 0 < host.hive_port < 65536


def test_hives_conf_properties(scenario: Scenario) -> None:
    """hives.conf parser under random lines"""
    scenario.did("Hypothesis fed 300 random hives.conf files built from valid, invalid and "
                 "random lines.")
    check_hives_conf_parser_never_escapes()
    scenario.saw("Every invalid file raised ConfigError starting with `<file>:<line>`; "
                 "every parsed host has a valid port.")


@FAST
@given(data=st.text(max_size=200), event_id=st.none() | st.integers(0, 10**9))
def check_sse_frame_round_trips(data: str, event_id: int | None) -> None:
    decoder = SSEDecoder()
    decoded = []
    # The first blank line ends the message, as it does for httpx-sse's line reader.
    for line in re.split(r"\r\n|\r|\n", sse.frame(data, event_id=event_id)):
        message = decoder.decode(line)
        if message is not None:
            decoded.append(message)
            break

    assert len(decoded) == 1
    expected = data.replace("\r\n", "\n").replace("\r", "\n")
    assert decoded[0].data == expected
    assert decoded[0].id == ("" if event_id is None else str(event_id))


def follow_body(body: bytes) -> list[dict[str, Any]] | RbeeError:
    """Run the keeper's QueenClient.follow over a stream whose body is `body`."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = QueenClient("http://queen.test")
    client.http = httpx.Client(base_url="http://queen.test",
                               transport=httpx.MockTransport(answer))
    try:
        return list(client.follow("job-1"))
    except RbeeError as exc:
        return exc
    finally:
        client.close()


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.one_of(
    st.just('data: {"seq": 1, "type": "done"}'), st.just("data: [DONE]"),
    st.just("data: not json"), st.just("data: 5"), st.just("id: x"), st.text(max_size=20)),
    max_size=6))
def test_keeper_follow_never_escapes(lines: list[str]) -> None:
    # The stream always ends with a terminal event: follow() reconnects after a stream that
    # ends without one, and this mock would return the same body forever.
    text = "\n".join(lines) + '\n\ndata: {"seq": 99, "type": "done"}\n\n'
    outcome = follow_body(text.encode("utf-8", "surrogatepass"))
    assert isinstance(outcome, list | RbeeError)


def test_sse_properties(scenario: Scenario) -> None:
    """SSE framing and the keeper's SSE reader"""
    scenario.did("Hypothesis framed random text (newlines, lone CR, unicode) with the "
                 "daemons' SSE writer and decoded it with httpx-sse, the keeper's parser.")
    check_sse_frame_round_trips()
    scenario.saw("Every frame decoded to exactly the data and id that were sent.")
    scenario.saw("The keeper's job follower turns a `data:` line that is not a JSON object "
                 "into one clear error instead of an exception.")


@FAST
@given(content=st.binary(max_size=80), mode=st.sampled_from([0o600, 0o640, 0o644, 0o400]))
def check_token_file_reader_never_escapes(content: bytes, mode: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cluster-token"
        path.write_bytes(content)
        os.chmod(path, mode)
        try:
            token = read_token_file(path)
        except ConfigError as exc:
            assert str(path) in exc.message
            return
        assert token
        assert token == token.strip()


@FAST
@given(content=st.binary(max_size=80))
def check_hive_id_file_reader_never_escapes(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "hive_id").write_bytes(content)
        try:
            hive_id = load_hive_id(Path(folder))
        except ConfigError as exc:
            assert "hive_id" in exc.message
            return
        assert ID_PATTERN.fullmatch(hive_id), hive_id


def test_config_file_properties(scenario: Scenario) -> None:
    """Token and hive id files with random bytes"""
    scenario.did("Hypothesis wrote random bytes (including non-UTF-8) with several modes "
                 "to the token file and the hive id file and read them back.")
    check_token_file_reader_never_escapes()
    check_hive_id_file_reader_never_escapes()
    scenario.saw("Each read returned a clean value or raised ConfigError naming the file.")


async def read_body(body: bytes) -> dict[str, Any] | RbeeError:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    try:
        return await read_json_object(request, max_bytes=4096)
    except RbeeError as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=5000) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def check_body_reader_never_escapes(body: bytes) -> None:
    outcome = asyncio.run(read_body(body))

    assert isinstance(outcome, dict | InvalidRequestError)


def test_body_reader_properties(scenario: Scenario) -> None:
    """Request bodies: non-UTF-8, malformed, oversized"""
    scenario.did("Hypothesis sent 300 random byte strings and JSON values, up to 5,000 "
                 "bytes against a 4,096-byte limit, through the daemons' body reader.")
    check_body_reader_never_escapes()
    scenario.saw("Each body became a JSON object or an InvalidRequestError (400).")


@FAST
@given(text=HOSTILE_TEXT)
def check_narration_line_has_no_raw_controls(text: str) -> None:
    event = {"actor": text, "action": text, "human": text, "level": "error"}

    plain = narration_line(event, "human", color=False)
    colored = narration_line(event, "human", color=True)

    assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]", plain)
    assert not re.search(r"[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f-\x9f]", colored)
    assert sanitize(text).count("\x1b") == 0


def test_terminal_escape_properties(scenario: Scenario) -> None:
    """Control characters and terminal escapes in narration"""
    scenario.did("Hypothesis built narration whose actor, action and text mix ESC, CSI, OSC, "
                 "BEL, CR, NUL and DEL, and rendered it as the keeper does.")
    check_narration_line_has_no_raw_controls()
    scenario.saw("No control character reaches the terminal raw; the only ESC bytes in "
                 "colour mode are the keeper's own colour codes.")
