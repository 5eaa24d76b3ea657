"""Statuses and kinds, as text in the database (no native enums: migrations stay portable)."""

from enum import StrEnum


class SubscriptionStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


class LegalBasis(StrEnum):
    """Specified Electronic Mail Act Art. 3(1) (CC-1, CC-4)."""

    OPT_IN = "opt_in"
    WRITTEN_NOTICE = "written_notice"
    BUSINESS_RELATIONSHIP = "business_relationship"
    PUBLISHED_ADDRESS = "published_address"


class ConsentEventKind(StrEnum):
    GRANT = "grant"
    CONFIRM = "confirm"
    WITHDRAW = "withdraw"


class ConsentMethod(StrEnum):
    WEB_FORM = "web_form"
    API = "api"
    PAPER_FORM = "paper_form"
    BUSINESS_CARD = "business_card"
    IMPORT = "import"
    ADMIN = "admin"
    PHONE = "phone"
    LETTER = "letter"
    EMAIL = "email"
    ONE_CLICK = "one_click"
    UNSUBSCRIBE_PAGE = "unsubscribe_page"
    WEB = "web"
    # A spam complaint from a mailbox provider's feedback loop: a refusal (Act Art. 3(3)).
    COMPLAINT = "complaint"


class OptOutChannel(StrEnum):
    PHONE = "phone"
    LETTER = "letter"
    EMAIL = "email"
    ADMIN = "admin"


class SuppressionScope(StrEnum):
    GLOBAL = "global"  # erasure: never mail the address again, from any sender
    SENDER = "sender"
    LIST = "list"


class SuppressionReason(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    OPTOUT_REQUEST = "optout_request"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCES = "soft_bounces"
    COMPLAINT = "complaint"
    ERASURE = "erasure"


class ApiKeyScope(StrEnum):
    ADMIN = "admin"
    READ = "read"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    DROPPED = "dropped"  # no longer appropriate to send (e.g. the person opted out meanwhile)


class Language(StrEnum):
    JA = "ja"
    EN = "en"


class Charset(StrEnum):
    """The charset a list's mails are written in. ISO-2022-JP (RFC 1468) is for readers on
    Japanese carrier addresses whose mail software shows it best; a message it cannot carry
    goes out in UTF-8 instead (app/mail/iso2022jp.py)."""

    UTF_8 = "utf-8"
    ISO_2022_JP = "iso-2022-jp"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a worker, under lease
    IN_FLIGHT = "in_flight"  # the SMTP transaction has started (MAIL FROM accepted)
    SENT = "sent"
    FAILED = "failed"
    SKIPPED_NO_CONSENT = "skipped_no_consent"
    SKIPPED_SUPPRESSED = "skipped_suppressed"
    CANCELLED = "cancelled"


# Deliveries no SMTP transaction has started for: an opt-out, a hard bounce or an erasure stops
# these in its own transaction (SG-2, SG-4, DS-3).
DELIVERY_NOT_STARTED = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)
# Deliveries that may still go out: while one exists, the address is still being mailed.
DELIVERY_UNFINISHED = (*DELIVERY_NOT_STARTED, DeliveryStatus.IN_FLIGHT.value)


class FeedbackKind(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    REFUSAL = "refusal"  # mailed to the unsubscribe address
