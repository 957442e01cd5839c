"""Sender hashes: comparable under the practice's secret, useless without it."""

from __future__ import annotations

import hashlib

from bridge.contacts import sender_hash, sender_key

NUMBER = "+13125550101"


def test_sender_hash_is_keyed_by_the_practice_secret():
    key = sender_key("practice-secret")

    assert sender_hash(NUMBER, key) == sender_hash(NUMBER, sender_key("practice-secret"))
    assert sender_hash(NUMBER, key) != sender_hash("+13125550102", key)
    assert sender_hash(NUMBER, key) != sender_hash(NUMBER, sender_key("another-secret"))
    # not the plain hash anyone could compute for every phone number
    assert sender_hash(NUMBER, key) != hashlib.sha256(NUMBER.encode()).hexdigest()


def test_without_a_secret_the_key_is_this_process_own():
    assert sender_key(None) == sender_key("") and len(sender_key(None)) == 32
    assert sender_key(None) != sender_key("practice-secret")
