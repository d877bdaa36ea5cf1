"""What the identity domain tells people, by email or SMS: codes and security notices.

Every text lives here, so the wording of a code message or a warning is reviewed in one place.
Messages go through the outbox (sealed), after the transaction that wrote them commits.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from coffer.identity import codes
from coffer.models import CodePurpose, User
from coffer.notifications.email import EmailMessage, enqueue_email
from coffer.notifications.sms import SmsMessage, enqueue_sms
from coffer.settings import Settings

_EMAIL_CODES = {
    CodePurpose.VERIFY_EMAIL: (
        "verification code",
        "If you did not sign up, ignore this email.",
    ),
    CodePurpose.RESET_PASSWORD: (
        "password reset code",
        "If you did not ask to reset your password, ignore this email: your password is unchanged.",
    ),
    CodePurpose.CHANGE_EMAIL: (
        "code to confirm this address",
        "If you did not ask to use this address with coffer, ignore this email.",
    ),
}


async def send_code(
    session: AsyncSession, settings: Settings, user: User, purpose: CodePurpose
) -> codes.IssuedCode:
    """A fresh code of `purpose`, sent where it proves something: a phone code to the pending
    number, a new-address code to the pending address, the others to the account's email."""
    issued = await codes.issue_code(session, settings, user.id, purpose)
    minutes = settings.verification_code_ttl_seconds // 60
    if purpose is CodePurpose.VERIFY_PHONE:
        if user.pending_phone is None:
            raise codes.InvalidCode()
        body = (
            f"Your coffer code is {issued.code}. It expires in {minutes} minutes. "
            "If you did not ask for it, ignore this message."
        )
        await enqueue_sms(session, settings, SmsMessage(user.pending_phone, body), kind=purpose)
        return issued
    what, ignore = _EMAIL_CODES[CodePurpose(purpose)]
    to = user.pending_email if purpose is CodePurpose.CHANGE_EMAIL else user.email
    if to is None:
        raise codes.InvalidCode()
    subject = f"Your coffer {what}: {issued.code}"
    body = f"Your coffer {what} is {issued.code}.\n\nIt expires in {minutes} minutes. {ignore}"
    await enqueue_email(session, settings, EmailMessage(to, subject, body), kind=purpose)
    return issued


async def notify_email(
    session: AsyncSession, settings: Settings, to: str, subject: str, body: str, *, kind: str
) -> None:
    """A security notice: no code, just what happened and what to do if it was not them."""
    await enqueue_email(session, settings, EmailMessage(to, subject, body), kind=kind)


async def notify_sign_up_attempt(session: AsyncSession, settings: Settings, user: User) -> None:
    """Sign-up with an address that has an account answers as if it were new (no enumeration);
    the owner learns of it here instead."""
    await notify_email(
        session,
        settings,
        user.email,
        "Someone tried to sign up with your address",
        "Someone tried to create a coffer account with this email address, which already has "
        "one. If it was you, sign in (or reset your password if you forgot it). If not, you "
        "can ignore this email: nothing changed.",
        kind="sign_up_attempt",
    )


async def notify_password_reset(session: AsyncSession, settings: Settings, user: User) -> None:
    await notify_email(
        session,
        settings,
        user.email,
        "Your coffer password was reset",
        "Your password was reset with a code sent to this address. Every session was signed "
        "out and every API key revoked: create new keys for your services. If you did not do "
        "this, reset your password again at once and contact support.",
        kind="password_reset_done",
    )


async def notify_address_in_use(session: AsyncSession, settings: Settings, to: str) -> None:
    """Someone asked to move their account to an address another account holds."""
    await notify_email(
        session,
        settings,
        to,
        "Someone tried to use your address",
        "Someone asked to use this email address for another coffer account. Nothing changed: "
        "it stays with your account. If it was you, sign in with this address instead.",
        kind="address_in_use",
    )


async def notify_email_changed(
    session: AsyncSession, settings: Settings, old_address: str, new_address: str
) -> None:
    await notify_email(
        session,
        settings,
        old_address,
        "Your coffer email address changed",
        f"Your account now signs in with {new_address} instead of this address. If you did "
        "not do this, contact support at once.",
        kind="email_changed",
    )


async def notify_phone_taken(
    session: AsyncSession, settings: Settings, user: User, phone: str
) -> None:
    """A number moves to whoever proves it now (numbers are recycled); its old holder hears."""
    await notify_email(
        session,
        settings,
        user.email,
        "Your phone number was removed from your coffer account",
        f"The number ending {phone[-4:]} was verified by another coffer account (numbers get "
        "reassigned), so payments by phone no longer reach you through it. If it is still "
        "yours, verify it again from your profile.",
        kind="phone_taken",
    )
