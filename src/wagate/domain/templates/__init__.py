"""Message templates: Meta's template listing read into `Template`, and a Send Template request
(SPEC §1) checked against the account's synced copy before anything is queued.

    template_from_meta(item)                 one entry of GET /{waba_id}/message_templates
    lookup_keys(fields)                      the template name and channel to look up
    build_template_send(fields, candidates)  a Send Template body → `SendRequest`, or
                                             `ValidationFailed` listing every problem
    check_request(listed, body)              the same judged from GET /v1/templates' list
    choose_template(candidates, name, …)     which synced template a request means
    fill_template(template, params)          the parameters checked and filled in → content
    example_params(template)                 a `params` object that fits, from Meta's examples

`candidates` are the channel's synced templates with the requested name (every language and
status). Error codes, all HTTP 422, besides Send Message's (`missing_field`, `invalid_phone_*`,
`invalid_field`, `field_too_long`, `invalid_metadata`, …):

    template_not_found        no template of that name on the channel, not in that language, or
                              not approved (the message says which: unknown, rejected, paused,
                              pending, disabled)
    template_not_supported    the template has a part wagate cannot fill (a location header, a
                              carousel, a copy-code or one-time-password button)
    template_params_mismatch  a parameter missing, extra, or of the wrong kind (a list for a
                              named body, `text` for a quick reply, …); each one is listed
    invalid_template_param    a value WhatsApp refuses: not a string, empty, a newline, a tab or
                              more than 4 spaces in a row in a text parameter, whitespace in a
                              URL suffix, a media link that is not http(s)
    template_param_too_long   the filled-in header over 60 characters or body over 1024, a
                              quick-reply payload over 256, a button URL over 2000

Decisions where Meta's documentation is loose: a quick reply's payload is optional (without it
Meta returns the button's text when it is tapped); a one-value list fills a named header too (the
SPEC's example); `language` is matched without regard to case and sent as synced; the language
may be left out only when the template has one language (whatever its status).
"""

from wagate.domain.templates.examples import example_params
from wagate.domain.templates.model import APPROVED, Template, template_from_meta
from wagate.domain.templates.params import fill_template
from wagate.domain.templates.request import (
    build_template_send,
    check_request,
    choose_template,
    lookup_keys,
)

__all__ = [
    "APPROVED",
    "Template",
    "build_template_send",
    "check_request",
    "choose_template",
    "example_params",
    "fill_template",
    "lookup_keys",
    "template_from_meta",
]
