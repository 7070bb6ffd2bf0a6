"""The password policy: common passwords and the email's name are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import core.users.passwords as passwords_module
from core.users.passwords import (
    COMMON_PASSWORD_PROBLEM,
    COMMON_PASSWORDS_COUNT,
    EMAIL_NAME_PROBLEM,
    common_passwords,
    password_problem,
)

LIST_FILE = Path(passwords_module.__file__).with_name("common_passwords.txt")


def test_the_list_has_at_least_10000_unique_lower_case_entries() -> None:
    lines = LIST_FILE.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 10_000
    assert len(set(lines)) == len(lines), "duplicates in the list"
    for line in lines:
        assert line == line.lower()
        assert line == line.strip()
        assert 1 <= len(line) <= 128
        assert line.isprintable()
    listed = common_passwords()
    assert all(line in listed for line in lines)
    assert len(listed) == len(lines)


def test_the_message_states_the_real_count() -> None:
    assert len(common_passwords()) == COMMON_PASSWORDS_COUNT
    assert f"{COMMON_PASSWORDS_COUNT:,}" in COMMON_PASSWORD_PROBLEM


def test_the_list_is_in_frequency_order() -> None:
    head = LIST_FILE.read_text(encoding="utf-8").splitlines()[:5]
    assert head == ["123456", "password", "12345678", "qwerty", "123456789"]


@pytest.mark.parametrize(
    "password",
    ["password", "Password", "PASSWORD", "123456789", "qwertyuiop", "  letmein  ", "Sunshine"],
)
def test_common_passwords_are_refused(password: str) -> None:
    assert password_problem(password) == COMMON_PASSWORD_PROBLEM
    assert password_problem(password, "someone@example.com") == COMMON_PASSWORD_PROBLEM


def test_the_refusal_messages_are_the_documented_sentences() -> None:
    assert COMMON_PASSWORD_PROBLEM == (
        "This password is one of the 30,000 most common passwords; choose another."
    )
    assert EMAIL_NAME_PROBLEM == (
        "The password must not contain the email address's name (the part before @)."
    )


def test_a_long_random_passphrase_is_accepted() -> None:
    phrase = "violet-Tundra-harbor-7351-quill"
    assert password_problem(phrase) is None
    assert password_problem(phrase, "alice.smith@example.com") is None


def test_the_email_local_part_is_refused_whatever_its_case() -> None:
    assert password_problem("Alice.Smith2024!", "alice.smith@example.com") == EMAIL_NAME_PROBLEM
    assert password_problem("xx-alice.smith-yy", "Alice.Smith@Example.com") == EMAIL_NAME_PROBLEM


def test_the_local_part_before_a_plus_tag_is_refused() -> None:
    assert password_problem("wonderalice-42!", "alice+tag@example.com") == EMAIL_NAME_PROBLEM
    assert password_problem("wonder-alice+tag-42", "alice+tag@example.com") == EMAIL_NAME_PROBLEM


def test_a_one_or_two_letter_local_part_is_not_looked_for() -> None:
    assert password_problem("always-salty-9", "al@example.com") is None
    assert password_problem("always-salty-9", "a@example.com") is None
    assert password_problem("always-salty-9", "al+x@example.com") is None
    # the whole local part, tag included, is long enough to be looked for
    assert password_problem("xal+shop-always", "al+shop@example.com") == EMAIL_NAME_PROBLEM


def test_no_email_or_a_malformed_one_checks_only_the_list() -> None:
    assert password_problem("alice.smith-2024!") is None
    assert password_problem("alice.smith-2024!", "alice.smith") is None


def test_the_loader_is_cached() -> None:
    first = common_passwords()
    assert common_passwords() is first


def test_only_listed_passwords_are_in_the_list() -> None:
    listed = common_passwords()
    lines = LIST_FILE.read_text(encoding="utf-8").splitlines()
    for line in lines[:: len(lines) // 50]:
        assert line in listed
        # One character more, or another case, is another password.
        assert line + "!" not in listed
        if line.upper() != line:
            assert line.upper() not in listed
    assert "violet-Tundra-harbor-7351-quill" not in listed
    assert "" not in listed
    assert 123456 not in listed
    # Two neighbouring lines joined by a newline are not a listed password.
    assert f"{lines[0]}\n{lines[1]}" not in listed


def test_the_list_takes_no_more_than_its_file() -> None:
    # Every process that registers a user holds it: bytes, not 30,000 strings.
    assert common_passwords().nbytes <= LIST_FILE.stat().st_size + 2
