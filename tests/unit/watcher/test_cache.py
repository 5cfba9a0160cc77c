"""The watcher's cache: what it keeps, and what each round hands over."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from libs.contracts import subjects
from libs.contracts.messages import (
    DataStoreDeleted,
    DataStoreObserved,
    SecretDeleted,
    SecretObserved,
    TcpDeleted,
    TcpObserved,
)
from libs.pki import SecretKind
from services.watcher.cache import Cache
from services.watcher.facts import (
    Batch,
    Job,
    check,
    external_copy_problems,
    observe_tcp,
    vanished,
)
from tests.unit.pki._support import NOW, TCP
from tests.unit.watcher._objects import KINDS, secret_object, tcp_object

LEAF = SecretKind.APISERVER
decode = msgspec.json.Decoder(SecretObserved | SecretDeleted | TcpObserved).decode


def listed_cache() -> Cache:
    """A cache that has seen the TCP and all its Secrets, with every list complete."""
    cache = Cache()
    cache.fold("tcps", "ADDED", tcp_object())
    for kind in KINDS:
        cache.fold("secrets", "ADDED", secret_object(kind))
    cache.fold("secrets", "SYNCED", {})
    return cache


def test_should_check_every_secret_once_with_its_tcp_and_cas_and_find_nothing_wrong() -> None:
    cache = listed_cache()
    work = cache.take(NOW)
    assert not work.refetch
    assert sorted(j.kind for j in work.batch.jobs) == sorted(k.value for k in KINDS)
    (tcp,) = work.batch.tcps
    assert tcp.spec == TCP
    assert tcp.ca_pem is not None
    assert tcp.front_proxy_ca_pem is not None
    for message in check(work.batch):
        observed = decode(message.payload)
        assert isinstance(observed, SecretObserved)
        assert observed.problems == (), observed.name


def test_should_keep_no_secret_data_once_handed_over() -> None:
    cache = listed_cache()
    cache.take(NOW)
    assert cache.pending == {}
    refs = cache.secrets[(TCP.namespace, TCP.name)]
    assert refs[LEAF].resource_version == "1"
    assert not cache.has_work()


def test_should_hold_a_secret_back_until_its_tcps_cas_are_seen_during_the_initial_list() -> None:
    cache = Cache()
    cache.fold("tcps", "ADDED", tcp_object())
    cache.fold("secrets", "ADDED", secret_object(LEAF))
    assert cache.take(NOW).batch.jobs == []
    cache.fold("secrets", "ADDED", secret_object(SecretKind.CA))
    cache.fold("secrets", "ADDED", secret_object(SecretKind.FRONT_PROXY_CA))
    work = cache.take(NOW)
    assert sorted(j.kind for j in work.batch.jobs) == sorted(
        k.value for k in (LEAF, SecretKind.CA, SecretKind.FRONT_PROXY_CA)
    )
    assert not work.refetch


def test_should_check_held_back_secrets_once_the_list_is_complete_even_without_cas() -> None:
    cache = Cache()
    cache.fold("secrets", "ADDED", secret_object(LEAF))
    assert cache.take(NOW).batch.jobs == []
    cache.fold("secrets", "SYNCED", {})
    assert [j.kind for j in cache.take(NOW).batch.jobs] == [LEAF.value]


def test_should_report_a_deleted_secret_with_its_last_identity() -> None:
    cache = listed_cache()
    cache.take(NOW)
    cache.fold("secrets", "DELETED", secret_object(LEAF, version="2"))
    work = cache.take(NOW)
    (message,) = work.deleted
    deleted = decode(message.payload)
    assert isinstance(deleted, SecretDeleted)
    assert (deleted.name, deleted.resource_version) == (f"{TCP.name}-{LEAF.value}", "2")


def test_should_list_the_secrets_to_read_again_when_their_ca_changes() -> None:
    cache = listed_cache()
    cache.take(NOW)
    cache.fold("secrets", "MODIFIED", secret_object(SecretKind.CA, version="2"))
    work = cache.take(NOW)
    assert [j.kind for j in work.batch.jobs] == [SecretKind.CA.value]
    assert sorted(s[2] for s, _ in work.refetch) == sorted(
        k for k in KINDS if k is not SecretKind.CA
    )
    skey, _ = work.refetch[0]
    assert cache.reread(skey, secret_object(skey[2], version="3"))
    assert cache.secrets[skey[:2]][skey[2]].resource_version == "3"


def test_should_hold_tcp_facts_back_while_holding_and_send_them_last() -> None:
    cache = listed_cache()
    assert cache.take(NOW).others == []
    cache.holding = False
    work = cache.take(NOW)
    (message,) = work.others
    assert isinstance(decode(message.payload), TcpObserved)


def test_should_take_at_most_the_limit_and_leave_the_rest_and_the_tcp_facts_for_later() -> None:
    cache = listed_cache()
    cache.holding = False
    first = cache.take(NOW, limit=5)
    assert len(first.batch.jobs) == 5
    assert first.others == []
    assert cache.has_work()
    second = cache.take(NOW, limit=100)
    assert len(second.batch.jobs) == len(KINDS) - 5
    assert len(second.others) == 1
    assert not cache.has_work()


def test_should_ignore_secrets_that_belong_to_no_tcp() -> None:
    cache = Cache()
    obj = secret_object(LEAF)
    obj["metadata"]["name"] = "unrelated"
    obj["metadata"]["labels"] = {}
    cache.fold("secrets", "ADDED", obj)
    assert not cache.has_work()


def datastore_object(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "DataStore",
        "metadata": {"name": "default", "uid": "ds-uid", "resourceVersion": version},
        "spec": {"driver": "etcd"},
    }


def test_should_report_a_deleted_datastore_and_a_recreated_one() -> None:
    facts = msgspec.json.Decoder(DataStoreObserved | DataStoreDeleted).decode
    cache = listed_cache()
    cache.holding = False
    cache.take(NOW)
    cache.fold("datastores", "ADDED", datastore_object("5"))
    (added,) = cache.take(NOW).others
    assert added.subject == subjects.datastore_event("default")
    assert isinstance(facts(added.payload), DataStoreObserved)
    cache.fold("datastores", "DELETED", datastore_object("6"))
    (deleted,) = cache.take(NOW).others
    assert deleted.subject == subjects.datastore_event("default")
    assert facts(deleted.payload) == DataStoreDeleted(
        name="default", uid="ds-uid", resource_version="6", observed_at=NOW
    )
    assert cache.take(NOW).others == []  # reported once
    cache.fold("datastores", "DELETED", datastore_object("6"))
    cache.fold("datastores", "ADDED", datastore_object("7"))  # back before the next round
    (again,) = cache.take(NOW).others
    assert isinstance(facts(again.payload), DataStoreObserved)


def test_a_resync_hands_over_every_object_again_its_secrets_to_read_afresh() -> None:
    cache = listed_cache()
    cache.holding = False
    cache.take(NOW)
    assert not cache.has_work()

    assert cache.resync() == (1, len(KINDS))

    work = cache.take(NOW)
    assert sorted(skey[2] for skey, _ in work.refetch) == sorted(KINDS)  # data not kept
    assert not work.batch.jobs
    assert [decode(m.payload).__class__ for m in work.others] == [TcpObserved]
    assert not cache.has_work()


def test_subjects_the_lists_no_longer_have_become_deletion_facts() -> None:
    cache = listed_cache()
    listed = cache.subjects()
    ns, name = TCP.namespace, TCP.name
    gone_secret = subjects.secret_event("default", "old", "old-ca")
    gone_tcp = subjects.tcp_event("default", "old")
    assert subjects.secret_event(ns, name, f"{name}-{LEAF.value}") in listed
    assert gone_secret not in listed

    secret = vanished(gone_secret, NOW)
    tcp = vanished(gone_tcp, NOW)
    assert secret is not None
    assert tcp is not None
    deleted = msgspec.json.decode(secret.payload, type=SecretDeleted)
    assert (deleted.namespace, deleted.tcp, deleted.name, deleted.kind) == (
        "default",
        "old",
        "old-ca",
        SecretKind.CA.value,
    )
    assert msgspec.json.decode(tcp.payload, type=TcpObserved | TcpDeleted).__class__ is TcpDeleted
    assert vanished(subjects.WATCHER_SYNCED, NOW) is None
    assert vanished(subjects.secret_event("default", "old", "unrelated"), NOW) is None


def test_a_new_datastore_ca_re_checks_the_datastore_certificates_on_it_against_it() -> None:
    cache = listed_cache()
    cache.holding = False
    cache.fold("datastores", "ADDED", datastore_object("1"))
    cache.take(NOW)
    assert TCP.datastore == "default"
    other_ca = secret_object(SecretKind.FRONT_PROXY_CA)  # any CA that did not sign it
    pem = base64.b64decode(other_ca["data"]["front-proxy-ca.crt"])
    assert cache.datastore_material("default", pem, None) is True
    assert (
        cache.datastore_material("default", pem, None) is False
    )  # the same CA again: nothing to do
    work = cache.take(NOW)
    assert [s[2] for s, _ in work.refetch] == [SecretKind.DATASTORE_CERTIFICATE]
    (tcp,) = work.batch.tcps
    assert tcp.datastore_ca_pem == pem
    facts = msgspec.json.Decoder(DataStoreObserved).decode
    (ds,) = [facts(m.payload) for m in work.others if ".datastore." in m.subject]
    assert ds.ca is not None
    # Checked against it, the certificate is flagged: it was not signed by this CA.
    skey, index = work.refetch[0]
    batch = Batch(NOW, work.batch.tcps, [Job(index, skey[2].value, secret_object(skey[2]))])
    (checked,) = check(batch)
    observed = decode(checked.payload)
    assert isinstance(observed, SecretObserved)
    assert observed.problems, "a datastore certificate of another CA must be flagged"
    assert cache.datastore_material("other", pem, None) is True  # no TCP on it: only its facts
    assert not cache.take(NOW).refetch


def test_a_datastore_certificate_that_is_not_the_external_client_certificate_is_flagged() -> None:
    secret = secret_object(SecretKind.DATASTORE_CERTIFICATE)
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    same = external_copy_problems(SecretKind.DATASTORE_CERTIFICATE, data, data["server.crt"])
    assert same == []
    replaced = external_copy_problems(SecretKind.DATASTORE_CERTIFICATE, data, b"another")
    assert [p.code for p in replaced] == ["external-copy-mismatch"]
    assert external_copy_problems(SecretKind.APISERVER, data, b"another") == []
    assert external_copy_problems(SecretKind.DATASTORE_CERTIFICATE, data, None) == []


def test_a_tcp_event_carries_certlc_annotations_and_no_others() -> None:
    obj = tcp_object()
    obj["metadata"]["annotations"] = {
        "certlc.kamaji.clastix.io/key-algorithm": "ECDSA-P256",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "kamaji.clastix.io/paused": "",
    }
    event = observe_tcp(obj, NOW)
    assert event.annotations == {"certlc.kamaji.clastix.io/key-algorithm": "ECDSA-P256"}
    assert event.paused
    assert observe_tcp(tcp_object(), NOW).annotations == {}
