"""The playground (`PLAYGROUND=1`, which scripts/dev sets): Botpress's side, played in-process.

An end-user chat page at `/playground/` drives the bridge's five routes with the bodies
Botpress's hitl-api integration sends (bridge/playground/integration.py), and the same
blueprint stands in for Botpress where the workers call it (Settings points
BOTPRESS_WEBHOOK_URL and BOTPRESS_API_URL here when PLAYGROUND=1):

    GET  /playground/                                   the chat page
    POST /playground/api/conversations                  start a hand-off
    GET  /playground/api/conversations/<id>?after=<n>   its state and log entries after n
    POST /playground/api/conversations/<id>/messages    the end user types  {"text"}
    POST /playground/api/conversations/<id>/bot         the bot speaks      {"kind"}
    POST /playground/api/conversations/<id>/end         closeRemoteTicket
    POST /playground/botpress/<token>/webhook/<route>   message-from-agent, agent-assigned,
                                                        stop-hitl (the workers post here)
    GET  /playground/botpress/<token>/api/v1/chat/conversations/<id>
                                                        close resolution (Bearer <token>,
                                                        x-bot-id: playground)

`<id>` is the Botpress conversation id the playground minted. `<token>` is
`bridge.config.playground_token(BRIDGE_SECRET)`. It is a development tool: anyone who
reaches the page can open hand-offs, so PLAYGROUND is off unless set. This package is the
web side only: it imports neither `workers` nor Celery.
"""

from bridge.playground.views import blueprint

__all__ = ["blueprint"]
