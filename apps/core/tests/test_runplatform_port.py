"""`make run` on a busy port stops at once and names the variable that changes it."""

import socket

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def test_runplatform_on_a_busy_port_fails_before_starting_anything_and_names_autoglue_port(db):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError) as refused:
            call_command("runplatform", "--host", "127.0.0.1", "--port", str(port))
    assert f"Port {port} on 127.0.0.1 is already in use" in str(refused.value)
    assert "AUTOGLUE_PORT=" in str(refused.value)
