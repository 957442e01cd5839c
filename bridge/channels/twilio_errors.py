"""Twilio error codes the bridge must remember beyond the one message that met them.

Kept apart from the channel so that webhooks can read them without loading an HTTP client.
"""

OPTED_OUT = {21610}
UNUSABLE_NUMBER = {21211, 21214, 21612, 21614, 30005, 30006}
RETRY_LATER = {30003, 20429}
