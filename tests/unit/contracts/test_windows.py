"""Window arithmetic: parsing, and where a due renewal lands (time zones, DST, long windows,
windows that do not open in time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.contracts.windows import (
    Slot,
    Window,
    WindowError,
    next_open,
    open_at,
    opened,
    parse_windows,
    slot,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


FAR = utc("2030-01-01T00:00")  # a latest safe moment that never binds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("  ; ", ()),
        ("0 2 * * 1-5 4h", (Window("0 2 * * 1-5", timedelta(hours=4), "UTC"),)),
        (
            "0 2 * * 1-5  4h   Europe/Berlin ; */5 * * * * 20s",
            (
                Window("0 2 * * 1-5", timedelta(hours=4), "Europe/Berlin"),
                Window("*/5 * * * *", timedelta(seconds=20), "UTC"),
            ),
        ),
        ("0 0 29 2 * 1d", (Window("0 0 29 2 *", timedelta(days=1), "UTC"),)),  # leap days only
    ],
)
def test_parse(text: str, expected: tuple[Window, ...]) -> None:
    assert parse_windows(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0 2 * * 4h", "expected five cron fields, a duration and an optional time zone"),
        ("0 2 * * * 4h UTC extra", "expected five cron fields"),
        ("0 2 * * * soon", "'soon' is not a duration"),
        ("0 2 * * * 0s", "the duration must be positive"),
        ("0 2 * * * 4h Mars/Olympus", "'Mars/Olympus' is not an IANA time zone"),
        ("61 2 * * * 4h", "bad cron expression '61 2 * * *'"),
        ("0 0 30 2 * 4h", "bad cron expression '0 0 30 2 *'"),  # February 30th never comes
        ("0 2 * * 1-5 4h; 0 3 * * * x", "'0 3 * * * x'"),  # the wrong one is named
    ],
)
def test_parse_errors_name_the_window_and_the_error(text: str, says: str) -> None:
    with pytest.raises(WindowError) as raised:
        parse_windows(text)
    assert says in str(raised.value)


NIGHTLY = parse_windows("0 2 * * * 4h")  # 02:00-06:00 UTC
BERLIN = parse_windows("30 2 * * * 1h Europe/Berlin")
NEW_YORK = parse_windows("0 2 * * * 1h America/New_York")


@pytest.mark.parametrize(
    ("windows", "due", "latest", "expected"),
    [
        # no window: at once
        ((), "2026-06-01T12:00", FAR, Slot(utc("2026-06-01T12:00"), True)),
        # due inside the window: at once
        (NIGHTLY, "2026-06-01T03:00", FAR, Slot(utc("2026-06-01T03:00"), True)),
        # due before it opens: when it opens
        (NIGHTLY, "2026-06-01T01:00", FAR, Slot(utc("2026-06-01T02:00"), True)),
        # due after it closed: the next night's
        (NIGHTLY, "2026-06-01T07:00", FAR, Slot(utc("2026-06-02T02:00"), True)),
        # a window is half-open: due at its very end waits for the next one
        (NIGHTLY, "2026-06-01T06:00", FAR, Slot(utc("2026-06-02T02:00"), True)),
        # time zones: 02:00 in New York is 06:00 UTC in summer (EDT), 07:00 in winter (EST)
        (NEW_YORK, "2026-06-01T00:00", FAR, Slot(utc("2026-06-01T06:00"), True)),
        (NEW_YORK, "2026-12-01T00:00", FAR, Slot(utc("2026-12-01T07:00"), True)),
        # spring forward: 02:30 does not exist in Berlin on 2026-03-29; cron fires right after
        # the jump, at 03:00 CEST (01:00 UTC)
        (BERLIN, "2026-03-29T00:00", FAR, Slot(utc("2026-03-29T01:00"), True)),
        # fall back: 02:30 happens twice on 2026-10-25; cron fires once, at the first (CEST,
        # 00:30 UTC), and the window is open an hour from there
        (BERLIN, "2026-10-24T23:00", FAR, Slot(utc("2026-10-25T00:30"), True)),
        (BERLIN, "2026-10-25T01:45", FAR, Slot(utc("2026-10-26T01:30"), True)),
        # a window longer than its period is always open
        (
            parse_windows("0 * * * * 2h"),
            "2026-06-01T12:34", FAR, Slot(utc("2026-06-01T12:34"), True),
        ),
        # several windows: the first to be open
        (
            parse_windows("0 2 * * * 1h; 0 22 * * * 1h"),
            "2026-06-01T12:00", FAR, Slot(utc("2026-06-01T22:00"), True),
        ),
        # no window opens before the latest safe moment: at that moment, outside the windows
        (
            parse_windows("0 0 1 1 * 1h"),
            "2026-06-01T00:00", utc("2026-06-02T00:00"), Slot(utc("2026-06-02T00:00"), False),
        ),
        # one that opens exactly at the latest safe moment still counts
        (NIGHTLY, "2026-06-01T07:00", utc("2026-06-02T02:00"), Slot(utc("2026-06-02T02:00"), True)),
        # due already past the latest safe moment: at once, in a window or not
        (
            NIGHTLY,
            "2026-06-01T12:00", utc("2026-06-01T11:00"), Slot(utc("2026-06-01T12:00"), False),
        ),
        (NIGHTLY, "2026-06-01T03:00", utc("2026-06-01T01:00"), Slot(utc("2026-06-01T03:00"), True)),
        # a leap-day window is as good as none for a renewal due in 2026
        (
            parse_windows("0 0 29 2 * 1d"),
            "2026-06-01T00:00", utc("2026-06-30T00:00"), Slot(utc("2026-06-30T00:00"), False),
        ),
    ],
)  # fmt: skip
def test_slot(windows: tuple[Window, ...], due: str, latest: datetime, expected: Slot) -> None:
    assert slot(windows, utc(due), latest) == expected


def test_slot_is_the_same_whatever_the_offset_of_due() -> None:
    due = utc("2026-06-01T01:00")
    elsewhere = due.astimezone(datetime.fromisoformat("2026-06-01T00:00+05:30").tzinfo)
    assert slot(NIGHTLY, elsewhere, FAR).at == slot(NIGHTLY, due, FAR).at == utc("2026-06-01T02:00")


def test_open_at() -> None:
    assert open_at((), utc("2026-06-01T12:00"))
    assert open_at(NIGHTLY, utc("2026-06-01T02:00"))
    assert open_at(NIGHTLY, utc("2026-06-01T05:59:59"))
    assert not open_at(NIGHTLY, utc("2026-06-01T06:00"))
    assert not open_at(NIGHTLY, utc("2026-06-01T01:59:59"))


def test_a_window_prints_as_it_parses() -> None:
    (window,) = parse_windows("*/5 * * * * 90m Europe/Berlin")
    assert str(window) == "*/5 * * * * 90m Europe/Berlin"
    assert parse_windows(str(window)) == (window,)


@pytest.mark.parametrize(
    ("spelled", "moment", "opening"),
    [
        ("0 2 * * * 4h", "2026-06-01T03:00:00+00:00", "2026-06-01T02:00:00+00:00"),
        ("0 2 * * * 4h", "2026-06-01T02:00:00+00:00", "2026-06-01T02:00:00+00:00"),
        ("0 2 * * * 4h", "2026-06-01T06:00:00+00:00", None),  # half-open: closed at 06:00
        ("0 2 * * * 4h; 0 3 * * * 4h", "2026-06-01T05:00:00+00:00", "2026-06-01T02:00:00+00:00"),
        ("0 2 * * * 4h; 0 3 * * * 4h", "2026-06-01T06:30:00+00:00", "2026-06-01T03:00:00+00:00"),
        ("0 * * * * 2h", "2026-06-01T03:30:00+00:00", "2026-06-01T02:00:00+00:00"),  # overlap
        ("0 2 * * * 4h Europe/Berlin", "2026-06-01T01:00:00+00:00", "2026-06-01T00:00:00+00:00"),
    ],
)
def test_when_the_window_open_at_a_moment_opened(
    spelled: str, moment: str, opening: str | None
) -> None:
    found = opened(parse_windows(spelled), datetime.fromisoformat(moment))
    assert found == (datetime.fromisoformat(opening) if opening else None)


def test_the_next_moment_a_window_is_open() -> None:
    windows = parse_windows("0 2 * * * 4h")
    assert next_open(windows, utc("2026-06-01T03:00:00Z")) == utc("2026-06-01T03:00:00Z")
    assert next_open(windows, utc("2026-06-01T07:00:00Z")) == utc("2026-06-02T02:00:00Z")
    assert next_open((), utc("2026-06-01T07:00:00Z")) == utc("2026-06-01T07:00:00Z")
