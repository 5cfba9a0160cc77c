"""The issuer's key reserve (libs/pki/reserve.py): every key handed out once, whatever threads
take and refill at once; bounded; an empty reserve generates on demand; no key in its repr."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives import serialization

from libs.pki.keys import KeyAlgorithm, PrivateKey, generate_private_key
from libs.pki.reserve import KeyReserve

P256 = KeyAlgorithm.ECDSA_P256


def der(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_no_key_is_handed_out_twice_while_threads_take_and_refill() -> None:
    reserve = KeyReserve(16, [P256, KeyAlgorithm.ECDSA_P384])
    taken: list[PrivateKey] = []
    lock = threading.Lock()
    stop = threading.Event()

    def take(algorithm: KeyAlgorithm) -> None:
        for _ in range(250):
            key = reserve.take(algorithm)
            with lock:
                taken.append(key)

    def refill() -> None:
        while not stop.is_set():
            reserve.refill_one()

    refillers = [threading.Thread(target=refill) for _ in range(2)]
    takers = [
        threading.Thread(target=take, args=(a,))
        for a in (P256, P256, P256, KeyAlgorithm.ECDSA_P384)
    ]
    for t in refillers + takers:
        t.start()
    for t in takers:
        t.join()
    stop.set()
    for t in refillers:
        t.join()
    assert len(taken) == 1000
    assert len({der(k) for k in taken}) == 1000, "a key was handed out twice"
    assert reserve.taken + reserve.generated_on_demand == 1000
    assert reserve.taken > 0, "no key came from the reserve"
    # and what is still held is none of what was handed out
    held = [reserve.take(P256) for _ in range(reserve.held(P256))]
    assert not {der(k) for k in held} & {der(k) for k in taken}


def test_bounded_per_algorithm_and_only_for_those_asked_for() -> None:
    made: list[KeyAlgorithm] = []

    def counting(algorithm: KeyAlgorithm) -> PrivateKey:
        made.append(algorithm)
        return generate_private_key(P256)

    reserve = KeyReserve(3, [P256], generate=counting)
    while reserve.refill_one():
        pass
    assert (reserve.held(P256), made) == (3, [P256] * 3)
    assert reserve.refill_one() is False  # full: nothing generated
    assert len(made) == 3
    reserve.take(KeyAlgorithm.RSA_3072)  # a TCP's profile asks for another: on demand...
    assert reserve.generated_on_demand == 1
    assert reserve.wanted() is KeyAlgorithm.RSA_3072  # ...and it is reserved from then on
    while reserve.refill_one():
        pass
    assert reserve.held(KeyAlgorithm.RSA_3072) == 3
    assert reserve.algorithms() == [P256, KeyAlgorithm.RSA_3072]


def test_a_reserve_of_zero_holds_nothing_and_generates_every_key() -> None:
    reserve = KeyReserve(0, [P256])
    assert reserve.refill_one() is False
    key = reserve.take(P256)
    assert key.public_key() is not None
    assert (reserve.taken, reserve.generated_on_demand, reserve.held(P256)) == (0, 1, 0)


def test_the_repr_shows_counts_never_keys() -> None:
    reserve = KeyReserve(2, [P256])
    reserve.refill_one()
    text = repr(reserve)
    assert text == "KeyReserve(capacity=2, held={'ECDSA-P256': 1})"
    assert "PRIVATE" not in text


def test_on_take_says_where_each_key_came_from() -> None:
    reserve = KeyReserve(1, [P256])
    seen: list[bool] = []
    reserve.on_take = seen.append
    reserve.refill_one()
    reserve.take(P256)
    reserve.take(P256)
    assert seen == [True, False]


def test_a_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity must be 0 or more"):
        KeyReserve(-1)
