"""Adding a medium touches one file in launchers/ and one line of its registration: the offer
``media:`` names that strategies, the engage call and the console accept come from that table."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

from engagement.api.notifications import IxnProfile
from engagement.console.visitors import InviteForm
from engagement.launchers.registry import MEDIA, REGISTRATION
from engagement.strategy.schema import Offer, Variant

ROOT = Path(__file__).resolve().parents[1]
SMS = '''"""A made-up medium: a text message, sent by the server once the visitor said yes."""

from ..attempts import Attempt
from ..settings import Settings


class SMS:
    name = "sms"
    media = "sms"

    async def accepted(self, attempt: Attempt) -> None:
        """Send it."""

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return True
'''
PROBE = """
from engagement.launchers.registry import MEDIA
from engagement.strategy.schema import Offer
from engagement.api.notifications import IxnProfile
from engagement.console.visitors import InviteForm
print(MEDIA)
print(Offer(invite="sms.html", media="sms").media)
print(IxnProfile(visitID="A" * 32, invite="sms.html", media="sms").media)
print(InviteForm(invite="sms.html", media="sms").media)
"""


def accepted(annotation: Any) -> set[str]:
    """The strings a ``Literal[...]`` (or ``Literal[...] | None``) admits."""
    found = set()
    for arg in get_args(annotation):
        found |= {a for a in get_args(arg) or (arg,) if isinstance(a, str)}
    return found


def test_the_media_accepted_everywhere_are_those_of_the_registration_table():
    assert MEDIA == ("chat", "callback", "custom")
    assert set(MEDIA) == {kind.media for kind, _ in REGISTRATION}
    for model in (Offer, Variant, IxnProfile, InviteForm):
        assert accepted(model.model_fields["media"].annotation) == set(MEDIA), model


def test_a_new_medium_is_one_file_and_one_registration_line(tmp_path: Path):
    """On a copy of the package: the launcher's file, one line in registry.REGISTRATION, and
    strategies, the engage call and the console's "invite now" accept its media."""
    package = tmp_path / "engagement"
    shutil.copytree(ROOT / "engagement", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "launchers" / "sms.py").write_text(SMS)
    registry = package / "launchers" / "registry.py"
    text = registry.read_text()
    text = text.replace("from .webhook import", "from .sms import SMS\nfrom .webhook import", 1)
    (last,) = [line for line in text.splitlines(keepends=True) if line.startswith("    (Custom")]
    registry.write_text(text.replace(last, last + "    (SMS, lambda d: SMS()),\n", 1))

    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["('chat', 'callback', 'custom', 'sms')", *["sms"] * 3]
