"""Templates -> an RFC 5322 message (without its From header, which the worker adds).

Templates live in ``controlplane/mail/templates``: ``<name>.subject.j2`` and
``<name>.txt.j2``, optionally ``<name>.html.j2`` (autoescaped). Each is given the
caller's values plus ``brand`` (name, color, support email, logo) and ``company``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

import jinja2

DEFAULT_COLOR = "#2563eb"
LOGO_CID = "brand-logo"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. application/pdf, audio/wav
    data: bytes


@dataclass(frozen=True)
class BrandView:
    """The brand as templates see it (``brand.name`` ...)."""

    name: str
    color: str = DEFAULT_COLOR
    support_email: str | None = None
    company_name: str | None = None
    # The logo, embedded as an inline image (cid:brand-logo) in the HTML part; PNG/JPEG only,
    # as mail clients rarely show SVG.
    logo: Attachment | None = None

    @property
    def logo_src(self) -> str | None:
        return f"cid:{LOGO_CID}" if self.logo is not None else None


@dataclass(frozen=True)
class Rendered:
    subject: str
    message: bytes  # every header but From, and the body
    message_id: str


class TemplateMissing(LookupError):
    pass


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("controlplane.mail", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False,
                                        default=False),
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def message_id(reference: str) -> str:
    """The same Message-ID for every attempt of one reference: receivers can drop repeats."""
    return f"<{hashlib.sha256(reference.encode()).hexdigest()[:40]}@controlplane.mail>"


def _template(name: str) -> jinja2.Template | None:
    try:
        return _env.get_template(name)
    except jinja2.TemplateNotFound:
        return None


def render(template: str, values: Mapping[str, object], *, brand: BrandView, to: str, reference: str,
           attachments: Sequence[Attachment] = ()) -> Rendered:
    subject_t, text_t = _template(f"{template}.subject.j2"), _template(f"{template}.txt.j2")
    if subject_t is None or text_t is None:
        raise TemplateMissing(f"mail template {template!r} needs {template}.subject.j2 and {template}.txt.j2")
    html_t = _template(f"{template}.html.j2")
    context = {**values, "brand": brand}
    # One line: a newline in a header would end it (and let a value inject others).
    subject = " ".join(subject_t.render(context).split())
    msg = EmailMessage(policy=SMTP)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    mid = message_id(reference)
    msg["Message-ID"] = mid
    if brand.support_email:
        msg["Reply-To"] = brand.support_email
    msg.set_content(text_t.render(context))
    if html_t is not None:
        msg.add_alternative(html_t.render(context), subtype="html")
        if brand.logo is not None:
            html_part = msg.get_body(preferencelist=("html",))
            assert isinstance(html_part, EmailMessage)
            maintype, _, subtype = brand.logo.content_type.partition("/")
            html_part.add_related(brand.logo.data, maintype=maintype, subtype=subtype, cid=f"<{LOGO_CID}>",
                                  disposition="inline", filename=brand.logo.filename)
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(attachment.data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                           filename=attachment.filename)
    return Rendered(subject=subject, message=msg.as_bytes(policy=SMTP), message_id=mid)
