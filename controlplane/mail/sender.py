"""One SMTP attempt of a claimed mail, through aiosmtplib to the configured relay."""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.policy import SMTP
from email.message import EmailMessage

import aiosmtplib

from controlplane.config import MailConfig
from controlplane.mail.store import Job


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str | None = None
    permanent: bool = False  # the relay refused for good (5xx): retrying cannot help


def from_header(job: Job, default_address: str) -> tuple[str, str]:
    """(envelope sender, From header line) of a mail: the brand's address, else the platform's."""
    address = job.from_email or default_address
    local, _, domain = address.rpartition("@")
    holder = EmailMessage(policy=SMTP)
    holder["From"] = Address(display_name=job.from_name, username=local, domain=domain)
    return address, holder.as_string(policy=SMTP).split("\r\n\r\n", 1)[0] + "\r\n"


def with_from(job: Job, default_address: str) -> tuple[str, bytes]:
    sender, line = from_header(job, default_address)
    return sender, line.encode() + job.message


@dataclass(frozen=True)
class Sender:
    config: MailConfig

    async def attempt(self, job: Job) -> Outcome:
        assert self.config.host is not None  # the worker sends nothing while mail is disabled
        sender, message = with_from(job, self.config.from_address)
        try:
            await aiosmtplib.send(
                message, sender=sender, recipients=[job.to_address], hostname=self.config.host,
                port=self.config.port, username=self.config.username, password=self.config.password,
                start_tls=self.config.starttls, use_tls=self.config.use_tls, timeout=self.config.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [response.code for response in exc.recipients]
            return Outcome(False, f"recipient refused: {exc}", permanent=all(500 <= c < 600 for c in codes))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Outcome(False, f"{type(exc).__name__}: {exc}")
        return Outcome(True)
