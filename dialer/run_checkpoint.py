"""Opening the checkpoint for a run: which campaign it belongs to, and `--new-campaign`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from dialer import logs
from dialer.checkpoint import Checkpoint, Identity
from dialer.checkpoint_files import set_aside
from dialer.config import Settings
from dialer.errors import CheckpointError, CheckpointWriteFailed


def identity_of(settings: Settings) -> Identity:
    def kept(value: str) -> str:
        """An id built from ${env:} is a secret: the checkpoint keeps a digest that still tells change."""
        if any(secret in value for secret in settings.secrets if logs.is_secret_sized(secret)):
            return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
        return value

    return Identity(
        organization_id=kept(settings.api.organization_id),
        agent_id=kept(settings.campaign.agent_id),
        from_phone_number_id=kept(settings.campaign.from_phone_number_id),
        dedupe=settings.leads.dedupe,
    )


def open_for_run(
    settings: Settings, *, new_campaign: bool, before_commit: Callable[[], None] | None = None
) -> Checkpoint:
    """The campaign's checkpoint, created on first use; another campaign's is refused or set aside."""
    path = settings.checkpoint_path
    identity = identity_of(settings)
    checkpoint = Checkpoint.open(path, before_commit=before_commit)
    try:
        if new_campaign and checkpoint.belongs_to(identity):
            # Only another campaign's checkpoint is set aside: a --new-campaign left in a
            # crontab must not start the same campaign afresh (and re-dial everyone) every run.
            logs.get_logger().warning(
                "new_campaign_ignored",
                reason="the checkpoint already belongs to this campaign: resuming it",
                path=str(path),
            )
        elif new_campaign:
            checkpoint.close()
            aside = set_aside(path)
            logs.get_logger().warning("checkpoint_set_aside", path=str(aside))
            checkpoint = Checkpoint.open(path, before_commit=before_commit)
        checkpoint.bind_identity(identity)
    except (CheckpointError, CheckpointWriteFailed):
        checkpoint.close()
        raise
    return checkpoint
