"""Backup fixtures: a backup bucket on the moto server, a backup key, and throwaway databases
on the real PostgreSQL server (created and dropped around each test)."""

from __future__ import annotations

import base64
import uuid

import boto3
import psycopg
import pytest
from django.db import connections
from psycopg import sql

from apps.maintenance.postgres import Target

BUCKET = "autoglue-backups-test"
KEY_ID = "bk-test"
KEY = base64.b64encode(b"\x17" * 32).decode()
CANARY = "CANARY-backup-5e1d7c0a"


@pytest.fixture
def backup_bucket(moto_server, settings, monkeypatch):
    # The installation's own AWS identity comes from boto3's usual chain (here: environment).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.BACKUP_S3_BUCKET = BUCKET
    settings.BACKUP_S3_PREFIX = "autoglue/backups/"
    settings.BACKUP_ENABLED = True
    settings.AUTOGLUE_BACKUP_KEYS = f"{KEY_ID}:{KEY}"
    settings.AUTOGLUE_BACKUP_ACTIVE_KEY = ""
    settings.BACKUP_PART_SIZE_MB = 5
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def _admin_target() -> Target:
    """The test server's maintenance database, for CREATE/DROP DATABASE."""
    target = Target.from_django()
    return Target(params={**target.params, "dbname": "postgres"}, password=target.password)


class Databases:
    """Throwaway databases beside the test database; dropped at the end of the test."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self, label: str) -> Target:
        name = f"maint_{label}_{uuid.uuid4().hex[:8]}"
        with _admin_target().connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        base = _admin_target()
        return Target(params={**base.params, "dbname": name}, password=base.password)

    def drop_all(self) -> None:
        with _admin_target().connect(autocommit=True) as conn:
            for name in self.names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


@pytest.fixture
def databases(db):
    created = Databases()
    yield created
    connections.close_all()
    created.drop_all()


def fill_source(target: Target, *, random_mib: int = 7) -> None:
    """A few tables of different kinds, one holding the canary, one with incompressible data
    (so the object spans several chunks and parts)."""
    with target.connect(autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text);"
            "CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES "
            "customers(id), total numeric(12, 2), placed_at timestamptz DEFAULT now(),"
            " extra jsonb);"
            "CREATE TABLE blobs (id int PRIMARY KEY, data bytea);"
            "CREATE INDEX orders_customer ON orders (customer_id);"
        )
        conn.execute(
            "INSERT INTO customers (name, note) SELECT 'customer ' || g, "
            "CASE WHEN g = 42 THEN %s ELSE md5(g::text) END FROM generate_series(1, 2000) g",
            [CANARY],
        )
        conn.execute(
            "INSERT INTO orders (customer_id, total, extra) SELECT 1 + g % 2000, g * 1.25, "
            "jsonb_build_object('n', g) FROM generate_series(1, 20000) g"
        )
        conn.execute(
            "INSERT INTO blobs SELECT g, decode(string_agg(md5(random()::text || g || h), ''),"
            " 'hex') FROM generate_series(1, %s) g, generate_series(1, 65536) h GROUP BY g",
            [random_mib],
        )


def table_checksums(target: Target) -> dict[str, str]:
    """md5 of every public table's rows in a fixed order, plus its sequence positions."""
    result: dict[str, str] = {}
    with target.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        for table in tables:
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                    " FROM {} t"
                ).format(sql.Identifier(table))
            ).fetchone()
            result[table] = f"{row[0]}:{row[1]}"
        for (seq,) in conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall():
            value = conn.execute(
                sql.SQL("SELECT last_value FROM {}").format(sql.Identifier(seq))
            ).fetchone()
            result[f"seq:{seq}"] = str(value[0])
    return result


def relation_count(target: Target) -> int:
    try:
        return target.user_tables()
    except psycopg.Error:
        return -1
