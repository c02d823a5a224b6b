"""Responses reach the client unchanged: status, headers and every body byte, through every transport."""

from __future__ import annotations

import pytest

from .app import MiB, pattern_digest
from .conftest import Pair


def test_json_responses_are_identical(pair: Pair) -> None:
    seen = pair.same("GET", "/json")
    assert seen.status == 200 and seen.json()["unicode"] == "ünï"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/items/3", 404), ("/conflict", 409), ("/text?status=503", 503), ("/nowhere", 404)],
)
def test_failing_responses_are_identical(pair: Pair, path: str, status: int) -> None:
    assert pair.same("GET", path).status == status


def test_an_unhandled_exception_looks_the_same_to_the_client(pair: Pair) -> None:
    seen = pair.same("GET", "/crash")
    # uvicorn answers 500; in process the exception also reaches the test, as it would without us.
    assert seen.status == 500 or seen.error == "RuntimeError"
    assert seen.error in (None, "RuntimeError")


@pytest.mark.parametrize("status", [200, 503])
def test_a_50_mib_streaming_response_arrives_byte_identical(pair: Pair, status: int) -> None:
    seen = pair.same("GET", f"/stream?size={50 * MiB}&status={status}")
    assert (seen.status, seen.size, seen.digest) == (status, 50 * MiB, pattern_digest(50 * MiB))


def test_a_file_response_is_identical(pair: Pair) -> None:
    seen = pair.same("GET", "/file")
    assert seen.status == 200 and seen.size == MiB + 12345
    assert seen.header("etag") is not None and seen.header("accept-ranges") == "bytes"


@pytest.mark.parametrize(
    ("byte_range", "status", "size"),
    [("bytes=100-199", 206, 100), ("bytes=-1000", 206, 1000), ("bytes=1048570-", 206, 12351)],
)
def test_a_ranged_file_response_is_identical(pair: Pair, byte_range: str, status: int, size: int) -> None:
    seen = pair.same("GET", "/file", headers={"range": byte_range})
    assert (seen.status, seen.size) == (status, size)
    assert seen.header("content-range") is not None


def test_an_unsatisfiable_range_is_refused_identically(pair: Pair) -> None:
    assert pair.same("GET", "/file", headers={"range": "bytes=99999999-"}).status == 416


@pytest.mark.parametrize("path", ["/json", "/file", f"/stream?size={MiB}"])
def test_head_requests_are_identical(pair: Pair, path: str) -> None:
    seen = pair.same("HEAD", path)
    assert seen.status == 200 and seen.size == 0


def test_a_head_request_to_a_get_only_route_is_refused_identically(pair: Pair) -> None:
    assert pair.same("HEAD", "/lifespan").status == 405
