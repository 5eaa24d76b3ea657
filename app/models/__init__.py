"""Every table, imported in one place (for Alembic and to keep imports free of cycles)."""

from app.models.api_key import ApiKey, ApiKeySender
from app.models.audit_log import AuditLog
from app.models.base import Base
from app.models.campaign import Campaign
from app.models.campaign_variant import CampaignVariant
from app.models.consent_event import ConsentEvent
from app.models.consent_text import ConsentText
from app.models.delivery import Delivery
from app.models.feedback_event import FeedbackEvent
from app.models.import_item import ImportItem
from app.models.instance_secret import InstanceSecret
from app.models.ledger_tombstone import LedgerTombstone
from app.models.list_import import ListImport
from app.models.mailing_list import MailingList
from app.models.outbox_message import OutboxMessage
from app.models.registered_wording import RegisteredWording
from app.models.sender import Sender
from app.models.subscriber import Subscriber
from app.models.subscription import Subscription
from app.models.suppression import Suppression
from app.models.suppression_lift import SuppressionLift
from app.models.template import Template

__all__ = [
    "ApiKey",
    "ApiKeySender",
    "AuditLog",
    "Base",
    "Campaign",
    "CampaignVariant",
    "ConsentEvent",
    "ConsentText",
    "Delivery",
    "FeedbackEvent",
    "ImportItem",
    "InstanceSecret",
    "LedgerTombstone",
    "ListImport",
    "MailingList",
    "OutboxMessage",
    "RegisteredWording",
    "Sender",
    "Subscriber",
    "Subscription",
    "Suppression",
    "SuppressionLift",
    "Template",
]
