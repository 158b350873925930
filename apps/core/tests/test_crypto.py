"""Secrets at rest: the field, the envelope and its bindings, keys and their lookups."""

from __future__ import annotations

import base64
import logging
import pickle
import uuid

import pytest
from django.db import connection

from apps.core.crypto import DecryptionError, KeyUnavailableError, MasterKeyConfigError
from apps.core.crypto.envelope import NONCE_BYTES, b64d, parse_envelope
from apps.core.crypto.keys import clear_key_cache
from apps.core.crypto.master import format_entry, generate_master_key, parse_master_keys
from apps.core.crypto.values import SecretContext, decrypt_value, encrypt_value
from apps.core.fields import Ciphertext, SecretText
from apps.core.models import DataKey
from apps.core.tests.crypto_support import CANARY, secret_models


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    clear_key_cache()
    yield
    clear_key_cache()


@pytest.fixture
def models_(db):
    with secret_models(drop=False) as pair:
        yield pair


@pytest.fixture
def OrgSecret(models_):  # noqa: N802 - a model class
    return models_[0]


@pytest.fixture
def PlatformSecret(models_):  # noqa: N802 - a model class
    return models_[1]


def _column(model, pk, field="secret"):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{field}" FROM "{table}" WHERE id = %s', [pk])  # noqa: S608
        return cursor.fetchone()[0]


def _write_column(model, pk, value, field="secret"):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'UPDATE "{table}" SET "{field}" = %s WHERE id = %s', [value, pk])  # noqa: S608


# --- The field ------------------------------------------------------------------------------


def test_a_saved_secret_reads_back_and_the_column_holds_only_ciphertext(OrgSecret, org):
    row = OrgSecret.objects.create(organization=org, secret=CANARY)
    stored = _column(OrgSecret, row.pk)
    assert stored.startswith("ag1:")
    assert CANARY not in stored
    assert OrgSecret.objects.get(pk=row.pk).secret == CANARY


def test_empty_and_null_secrets_stay_empty_without_ciphertext(OrgSecret, org):
    row = OrgSecret.objects.create(organization=org, secret="", note=None)
    assert _column(OrgSecret, row.pk) == ""
    assert _column(OrgSecret, row.pk, "note") is None
    again = OrgSecret.objects.get(pk=row.pk)
    assert again.secret == "" and again.note is None


def test_values_list_returns_the_envelope_never_the_plaintext(OrgSecret, org):
    OrgSecret.objects.create(organization=org, secret=CANARY)
    (value,) = OrgSecret.objects.values_list("secret", flat=True)
    assert isinstance(value, Ciphertext) and value.startswith("ag1:")


def test_the_plaintext_repr_is_masked_and_pickles_carry_no_plaintext(OrgSecret, org):
    row = OrgSecret.objects.create(organization=org, secret=CANARY)
    loaded = OrgSecret.objects.get(pk=row.pk)
    assert isinstance(loaded.secret, SecretText)
    assert CANARY not in repr(loaded.secret)
    assert CANARY not in repr(loaded.__dict__)
    assert CANARY.encode() not in pickle.dumps(loaded)
    assert pickle.loads(pickle.dumps(loaded)).secret == CANARY  # noqa: S301 - our own bytes


def test_changing_a_secret_re_encrypts_it_and_reading_does_not_rewrite_it(OrgSecret, org):
    row = OrgSecret.objects.create(organization=org, secret="first")
    first = _column(OrgSecret, row.pk)
    loaded = OrgSecret.objects.get(pk=row.pk)
    assert loaded.secret == "first"
    loaded.name = "renamed"
    loaded.save()
    assert _column(OrgSecret, row.pk) == first
    loaded.secret = "second"
    loaded.save()
    assert _column(OrgSecret, row.pk) != first
    assert OrgSecret.objects.get(pk=row.pk).secret == "second"


def test_refresh_from_db_and_deferred_loading_see_the_secret(OrgSecret, org):
    row = OrgSecret.objects.create(organization=org, secret=CANARY)
    deferred = OrgSecret.objects.only("id", "organization").get(pk=row.pk)
    assert deferred.secret == CANARY
    row.refresh_from_db()
    assert row.secret == CANARY
    row.save()
    assert OrgSecret.objects.get(pk=row.pk).secret == CANARY


def test_full_clean_validates_the_plaintext_of_a_new_row(OrgSecret, org):
    row = OrgSecret(organization=org, name="n", secret=CANARY)
    row.full_clean()
    row.save()
    assert OrgSecret.objects.get(pk=row.pk).secret == CANARY


def test_copying_a_secret_to_another_row_re_encrypts_it_for_that_row(OrgSecret, org, other_org):
    source = OrgSecret.objects.create(organization=org, secret=CANARY)
    source = OrgSecret.objects.get(pk=source.pk)
    target = OrgSecret.objects.create(organization=other_org, secret="x")
    target.secret = source.secret
    target.save()
    assert OrgSecret.objects.get(pk=target.pk).secret == CANARY


def test_copying_a_secret_to_another_field_of_the_same_row_re_encrypts_it(OrgSecret, org):
    row = OrgSecret.objects.create(organization=org, secret=CANARY)
    row = OrgSecret.objects.get(pk=row.pk)
    row.note = row.secret
    row.save()
    assert OrgSecret.objects.get(pk=row.pk).note == CANARY


def test_a_saved_row_given_a_new_pk_is_re_encrypted_for_its_new_identity(OrgSecret, org):
    row = OrgSecret.objects.create(organization=org, secret=CANARY)
    copy = OrgSecret.objects.get(pk=row.pk)
    copy.pk = uuid.uuid4()
    copy._state.adding = True
    copy.save()
    assert OrgSecret.objects.get(pk=copy.pk).secret == CANARY


def test_queryset_update_with_plaintext_is_refused_without_echoing_it(OrgSecret, org):
    OrgSecret.objects.create(organization=org, secret="x")
    with pytest.raises(ValueError) as excinfo:
        OrgSecret.objects.update(secret=CANARY)
    assert CANARY not in str(excinfo.value)


def test_platform_models_use_the_platform_data_key(PlatformSecret):
    row = PlatformSecret.objects.create(secret=CANARY)
    assert PlatformSecret.objects.get(pk=row.pk).secret == CANARY
    key = DataKey.objects.get()
    assert key.organization_id is None
    assert parse_envelope(_column(PlatformSecret, row.pk), what="x")[0] == key.id


def test_forms_and_serialization_never_carry_the_secret(OrgSecret, org):
    from django.core import serializers
    from django.forms import modelform_factory

    row = OrgSecret.objects.create(organization=org, secret=CANARY)
    loaded = OrgSecret.objects.get(pk=row.pk)
    form = modelform_factory(OrgSecret, fields=["name", "secret"])(instance=loaded)
    assert CANARY not in str(form)
    assert loaded.secret[:4] not in form.initial.get("secret", "")
    dumped = serializers.serialize("json", [loaded])
    assert CANARY not in dumped and "ag1:" not in dumped
    # An empty input in a form means "unchanged".
    form = modelform_factory(OrgSecret, fields=["name", "secret"])(
        {"name": "n", "secret": ""}, instance=loaded
    )
    assert form.is_valid(), form.errors
    form.save()
    assert OrgSecret.objects.get(pk=row.pk).secret == CANARY


# --- Bindings: a ciphertext only decrypts where it was written --------------------------------


def test_ciphertext_copied_to_another_row_of_the_same_org_fails_to_decrypt(OrgSecret, org):
    a = OrgSecret.objects.create(organization=org, secret=CANARY)
    b = OrgSecret.objects.create(organization=org, secret="other")
    _write_column(OrgSecret, b.pk, _column(OrgSecret, a.pk))
    with pytest.raises(DecryptionError) as excinfo:
        OrgSecret.objects.get(pk=b.pk).secret  # noqa: B018
    assert CANARY not in str(excinfo.value)
    assert str(b.pk) in str(excinfo.value)


def test_ciphertext_copied_to_another_orgs_row_fails_to_decrypt(OrgSecret, org, other_org):
    a = OrgSecret.objects.create(organization=org, secret=CANARY)
    b = OrgSecret.objects.create(organization=other_org, secret="other")
    _write_column(OrgSecret, b.pk, _column(OrgSecret, a.pk))
    with pytest.raises(DecryptionError, match="another organization"):
        OrgSecret.objects.get(pk=b.pk).secret  # noqa: B018


def test_a_row_moved_to_another_org_behind_the_fields_back_fails_to_decrypt(
    OrgSecret, org, other_org
):
    a = OrgSecret.objects.create(organization=org, secret=CANARY)
    OrgSecret.objects.filter(pk=a.pk).update(organization=other_org)
    with pytest.raises(DecryptionError):
        OrgSecret.objects.get(pk=a.pk).secret  # noqa: B018


def test_ciphertext_copied_to_another_field_fails_to_decrypt(OrgSecret, org):
    a = OrgSecret.objects.create(organization=org, secret=CANARY, note="n")
    _write_column(OrgSecret, a.pk, _column(OrgSecret, a.pk), field="note")
    with pytest.raises(DecryptionError):
        OrgSecret.objects.get(pk=a.pk).note  # noqa: B018


@pytest.mark.parametrize("part", ["nonce", "ciphertext", "tag"])
def test_any_flipped_bit_fails_to_decrypt(OrgSecret, org, part):
    a = OrgSecret.objects.create(organization=org, secret=CANARY)
    key_id, blob = parse_envelope(_column(OrgSecret, a.pk), what="x")
    index = {"nonce": 0, "ciphertext": NONCE_BYTES + 1, "tag": len(blob) - 1}[part]
    tampered = bytearray(blob)
    for bit in range(8):
        tampered[index] = blob[index] ^ (1 << bit)
        encoded = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
        _write_column(OrgSecret, a.pk, f"ag1:{key_id}:{encoded}")
        with pytest.raises(DecryptionError):
            OrgSecret.objects.get(pk=a.pk).secret  # noqa: B018


def test_values_that_are_not_envelopes_fail_clearly(OrgSecret, org):
    a = OrgSecret.objects.create(organization=org, secret=CANARY)
    for junk in ("plain text", "ag1:not-a-uuid:xx", f"ag1:{uuid.uuid4()}:AAAA", "ag9:x:y"):
        _write_column(OrgSecret, a.pk, junk)
        with pytest.raises(DecryptionError):
            OrgSecret.objects.get(pk=a.pk).secret  # noqa: B018


def test_a_value_under_a_data_key_that_no_longer_exists_is_a_key_error(OrgSecret, org):
    a = OrgSecret.objects.create(organization=org, secret=CANARY)
    DataKey.objects.all().delete()
    clear_key_cache()
    with pytest.raises(KeyUnavailableError):
        OrgSecret.objects.get(pk=a.pk).secret  # noqa: B018


def test_one_hundred_thousand_encryptions_never_repeat_a_nonce(
    org, django_capture_on_commit_callbacks
):
    context = SecretContext(model="core.x", field="f", pk="1", organization_id=org.pk)
    with django_capture_on_commit_callbacks(execute=True):
        encrypt_value("x", context=context)  # creates the org's data key and caches it
    nonces = set()
    for _ in range(100_000):
        _, blob = parse_envelope(encrypt_value("x", context=context), what="x")
        nonces.add(blob[:NONCE_BYTES])
    assert len(nonces) == 100_000


def test_the_same_plaintext_encrypts_differently_every_time(org):
    context = SecretContext(model="core.x", field="f", pk="1", organization_id=org.pk)
    first, second = (encrypt_value(CANARY, context=context) for _ in range(2))
    assert first != second
    assert decrypt_value(first, context=context) == decrypt_value(second, context=context)


# --- Keys -----------------------------------------------------------------------------------


def test_each_org_gets_its_own_data_key_created_on_first_use(OrgSecret, org, other_org):
    assert not DataKey.objects.exists()
    OrgSecret.objects.create(organization=org, secret="a")
    OrgSecret.objects.create(organization=org, secret="b")
    OrgSecret.objects.create(organization=other_org, secret="c")
    keys = DataKey.objects.all()
    assert sorted(k.organization_id for k in keys) == sorted([org.pk, other_org.pk])
    assert {k.master_key_id for k in keys} == {"test-master"}


def test_the_database_holds_only_wrapped_keys(OrgSecret, org, settings):
    OrgSecret.objects.create(organization=org, secret="a")
    key = DataKey.objects.get()
    master = settings.AUTOGLUE_MASTER_KEYS.active_key
    assert master not in b64d(key.wrapped_key)
    assert len(b64d(key.wrapped_key)) == 12 + 32 + 16


def test_decrypting_many_secrets_of_one_org_costs_one_key_query(
    OrgSecret, org, django_assert_num_queries, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        OrgSecret.objects.create(organization=org, secret="seed")
    for n in range(50):
        OrgSecret.objects.create(organization=org, secret=f"{CANARY}-{n}")
    clear_key_cache()
    rows = list(OrgSecret.objects.all())
    with django_assert_num_queries(1):
        assert len({row.secret for row in rows}) == 51
    # Warm: no key query at all.
    rows = list(OrgSecret.objects.all())
    with django_assert_num_queries(0):
        assert len({row.secret for row in rows}) == 51


def test_a_key_created_in_a_transaction_is_not_cached_before_it_commits(OrgSecret, org):
    # Inside the test's never-committed transaction the key stays out of the process cache, so
    # a rollback can never leave a cached key that encrypts data nobody can read later.
    OrgSecret.objects.create(organization=org, secret="a")
    from apps.core.crypto import keys

    assert keys._cache.get_active(keys.scope_label(org.pk)) is None


def test_secret_values_never_reach_the_logs(OrgSecret, org, caplog):
    caplog.set_level(logging.DEBUG)
    row = OrgSecret.objects.create(organization=org, secret=CANARY)
    OrgSecret.objects.get(pk=row.pk).secret  # noqa: B018
    _write_column(OrgSecret, row.pk, "ag1:" + str(uuid.uuid4()) + ":AAAA")
    with pytest.raises(DecryptionError):
        OrgSecret.objects.get(pk=row.pk).secret  # noqa: B018
    assert CANARY not in caplog.text


# --- Master key configuration ---------------------------------------------------------------


def test_master_key_configuration_accepts_several_keys_and_names_the_active_one():
    a, b = generate_master_key(), generate_master_key()
    ring = parse_master_keys(f"{format_entry('old', a)},\n{format_entry('new', b)}", "new")
    assert ring.active_id == "new" and ring.get("old") == a
    assert base64.b64encode(a).decode() not in repr(ring)


@pytest.mark.parametrize(
    ("text", "active", "message"),
    [
        ("", "", "No master key is configured"),
        ("k1:" + base64.b64encode(b"short").decode(), "", "exactly 32 bytes"),
        ("no-colon", "", "is not '<id>:<base64 key>'"),
        (format_entry("a", b"A" * 32) + "," + format_entry("b", b"B" * 32), "", "ACTIVE"),
        (format_entry("a", b"A" * 32), "b", "not one of the configured"),
        (format_entry("a", b"A" * 32) + "," + format_entry("a", b"B" * 32), "a", "twice"),
    ],
)
def test_bad_master_key_configuration_stops_with_a_clear_message(text, active, message):
    with pytest.raises(MasterKeyConfigError, match=message) as excinfo:
        parse_master_keys(text, active)
    assert "QUFB" not in str(excinfo.value)  # base64 of the key bytes never appears


def test_the_admin_lists_data_keys_without_key_material(OrgSecret, org, settings, client):
    from apps.accounts.tests.factories import UserFactory

    row = OrgSecret.objects.create(organization=org, secret=CANARY)
    key = DataKey.objects.get()
    client.force_login(UserFactory(is_admin=True))
    pages = [
        client.get("/admin/core/datakey/"),
        client.get(f"/admin/core/datakey/{key.pk}/change/"),
    ]
    master = settings.AUTOGLUE_MASTER_KEYS.active_key
    assert "test-master" in pages[0].content.decode()
    for response in pages:
        assert response.status_code == 200
        body = response.content.decode()
        for needle in (CANARY, key.wrapped_key, base64.b64encode(master).decode()):
            assert needle not in body
    assert row.pk


def test_half_way_through_a_rotation_reading_both_versions_still_costs_one_key_query(
    OrgSecret, org, django_assert_num_queries, django_capture_on_commit_callbacks
):
    from apps.core.crypto.rotation import data_key_rotate

    with django_capture_on_commit_callbacks(execute=True):
        old = [OrgSecret.objects.create(organization=org, secret=f"old-{n}") for n in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        data_key_rotate(organization_id=org.pk)
    new = [OrgSecret.objects.create(organization=org, secret=f"new-{n}") for n in range(5)]
    assert DataKey.objects.filter(organization=org).count() == 2
    clear_key_cache()
    rows = list(OrgSecret.objects.filter(pk__in=[r.pk for r in old + new]))
    with django_assert_num_queries(1):
        assert sorted(row.secret[:3] for row in rows) == ["new"] * 5 + ["old"] * 5


def test_an_admin_that_would_list_a_secret_fails_the_system_check(OrgSecret):
    from django.contrib import admin

    from apps.core.fields import check_admin_never_shows_secrets

    class LeakyAdmin(admin.ModelAdmin):
        list_display = ["name", "secret"]
        search_fields = ["^note"]

    admin.site.register(OrgSecret, LeakyAdmin)
    try:
        errors = check_admin_never_shows_secrets()
    finally:
        admin.site.unregister(OrgSecret)
    assert sorted(e.msg.split(" names")[0] for e in errors) == [
        "LeakyAdmin.list_display",
        "LeakyAdmin.search_fields",
    ]
    assert {e.id for e in errors} == {"core.E102"}
    assert check_admin_never_shows_secrets() == []
