"""Request and response examples copied verbatim from the Altcraft docs (../shared/altcraft-docs).

Data only: the tests import these constants. The bytes are exactly what the docs pages show,
including their quirks (the leading space before ``<xml>`` in the resources ``tasks/status`` XML
example, ``<format>json</format>`` inside XML requests, ``<props/>``, ``<isp></isp>``).
"""

from __future__ import annotations

# --- segments/get_counters (segments-get_counters.txt) ------------------------------------

SEGMENTS_GET_COUNTERS_REQUEST_JSON = b"""{
"token": "abcdefghijklmnqrstuvwxyz",
"list_id": 1,
"resource_id": 24,
"id": 7,
"format": "json"
}"""

SEGMENTS_GET_COUNTERS_REQUEST_XML = b"""<xml>
<token>abcdefghijklmnqrstuvwxyz</token>
<list_id>1</list_id>
<resource_id>24</resource_id>
<id>7</id>
<format>json</format>
</xml>"""

SEGMENTS_GET_COUNTERS_RESPONSE_JSON = b"""{
"data": [
{
"channel": "email",
"status": {
"subscribed_sendable": 209,
"unconfirmed_sendable": 0
}
},
{
"channel": "push",
"status": {
"subscribed_sendable": 0,
"unconfirmed_sendable": 0
}
},
{
"channel": "sms",
"status": {
"subscribed_sendable": 108,
"unconfirmed_sendable": 0
}
}
],
"error": 0,
"error_text": "Successful operation"
}"""

SEGMENTS_GET_COUNTERS_RESPONSE_XML = b"""<xml>
<data>
<channel>email</channel>
<status>
<subscribed_sendable>209</subscribed_sendable>
<unconfirmed_sendable>0</unconfirmed_sendable>
</status>
</data>
<data>
<channel>push</channel>
<status>
<subscribed_sendable>0</subscribed_sendable>
<unconfirmed_sendable>0</unconfirmed_sendable>
</status>
</data>
<data>
<channel>sms</channel>
<status>
<subscribed_sendable>108</subscribed_sendable>
<unconfirmed_sendable>0</unconfirmed_sendable>
</status>
</data>
<error>0</error>
<error_text>Successful operation</error_text>
</xml>"""

# --- segments/refresh_counters (segments-refresh_counters+tasks-status.txt) ----------------

SEGMENTS_REFRESH_COUNTERS_REQUEST_JSON = b"""{
"token": "abcdefghijklmnqrstuvwxyz",
"db_id": 1,
"resource_id": 24,
"id": 7,
"format": "json"
}"""

SEGMENTS_REFRESH_COUNTERS_REQUEST_XML = b"""<xml>
<token>abcdefghijklmnqrstuvwxyz</token>
<db_id>1</db_id>
<resource_id>24</resource_id>
<id>7</id>
<format>json</format>
</xml>"""

SEGMENTS_REFRESH_COUNTERS_RESPONSE_JSON = b"""{
"data": {
"task_id": "55a345c8-3d79-47ef-b03e-b84ce8e0c126"
},
"error": 0,
"error_text": "Successful operation"
}"""

SEGMENTS_REFRESH_COUNTERS_RESPONSE_XML = b"""<xml>
<data>
<task_id>55a345c8-3d79-47ef-b03e-b84ce8e0c126</task_id>
</data>
<error>0</error>
<error_text>Successful operation</error_text>
</xml>"""

# --- tasks/status after a segment refresh (segments-refresh_counters+tasks-status.txt) -----

SEGMENT_TASKS_STATUS_REQUEST_JSON = b"""{
"task_id": "930bfdb0-a5a8-4207-a77d-6b989bdea326",
"token": "abcdefghijklmnqrstuvwxyz"
}"""

SEGMENT_TASKS_STATUS_REQUEST_XML = b"""<xml>
<task_id>930bfdb0-a5a8-4207-a77d-6b989bdea326</task_id>
<token>abcdefghijklmnqrstuvwxyz</token>
</xml>"""

SEGMENT_TASKS_STATUS_RESPONSE_JSON = b"""{
"data": {
"status": "completed",
"progress": 100,
"result": [
{
"channels": [
{
"channel": "email",
"status": {
"subscribed_sendable": 209,
"unconfirmed_sendable": 0
}
},
{
"channel": "push",
"status": {
"subscribed_sendable": 0,
"unconfirmed_sendable": 0
}
},
{
"channel": "sms",
"status": {
"subscribed_sendable": 0,
"unconfirmed_sendable": 0
}
}
],
"in_progress": false,
"list_id": 1,
"refresh_task_id": "",
"resource_id": 27,
"updated": "2024-04-20T09:30:01.583Z"
}
]
},
"error": 0,
"error_text": "Successful operation"
}"""

SEGMENT_TASKS_STATUS_RESPONSE_XML = b"""<xml>
<data>
<status>completed</status>
<progress>100</progress>
<result>
<channels>
<channel>email</channel>
<status>
<subscribed_sendable>209</subscribed_sendable>
<unconfirmed_sendable>0</unconfirmed_sendable>
</status>
</channels>
<channels>
<channel>push</channel>
<status>
<subscribed_sendable>0</subscribed_sendable>
<unconfirmed_sendable>0</unconfirmed_sendable>
</status>
</channels>
<channels>
<channel>sms</channel>
<status>
<subscribed_sendable>0</subscribed_sendable>
<unconfirmed_sendable>0</unconfirmed_sendable>
</status>
</channels>
<in_progress>false</in_progress>
<list_id>1</list_id>
<refresh_task_id></refresh_task_id>
<resource_id>27</resource_id>
<updated>2024-04-20T09:30:01.583Z</updated>
</result>
</data>
<error>0</error>
<error_text>Successful operation</error_text>
</xml>"""

# --- resources/refresh_counters (resources-refresh_counters+tasks-status.txt) --------------

RESOURCES_REFRESH_COUNTERS_REQUEST_JSON = b"""{
"token": "abcdefghijklmnqrstuvwxyz",
"id": 24,
"list_id": 1,
"format": "json",
"feedback": {
"type": "JSON",
"url": "http://example.com/receiver"
}
}"""

RESOURCES_REFRESH_COUNTERS_REQUEST_XML = b"""<xml>
<token>abcdefghijklmnqrstuvwxyz</token>
<id>24</id>
<list_id>1</list_id>
<format>json</format>
<feedback>
<type>JSON</type>
<url>http://example.com/receiver</url>
</feedback>
</xml>"""

RESOURCES_REFRESH_COUNTERS_RESPONSE_JSON = b"""{
"data": {
"task_id": "c9c3ec48-1bef-4969-9c1a-df39f0c179bb"
},
"error": 0,
"error_text": "Successful operation"
}"""

RESOURCES_REFRESH_COUNTERS_RESPONSE_XML = b"""<xml>
<data>
<task_id>c9c3ec48-1bef-4969-9c1a-df39f0c179bb</task_id>
</data>
<error>0</error>
<error_text>Successful operation</error_text>
</xml>"""

# --- tasks/status after a resource refresh (resources-refresh_counters+tasks-status.txt) ---

RESOURCE_TASKS_STATUS_REQUEST_JSON = b"""{
"token": "abcdefghijklmnqrstuvwxyz",
"task_id": "c9c3ec48-1bef-4969-9c1a-df39f0c179bb"
}"""

RESOURCE_TASKS_STATUS_REQUEST_XML = b"""<xml>
<token>abcdefghijklmnqrstuvwxyz</token>
<task_id>c9c3ec48-1bef-4969-9c1a-df39f0c179bb</task_id>
</xml>"""

RESOURCE_TASKS_STATUS_RESPONSE_JSON = b"""{
"data": {
"status": "completed",
"progress": 100,
"result": [
{
"channels": [
{
"channel": "sms",
"status": {
"all": 1336,
"complained": 0,
"hardbounced": 0,
"invalid": 0,
"subscribed": 0,
"subscribed_sendable": 0,
"suspended": 0,
"unconfirmed": 0,
"unconfirmed_sendable": 0,
"unsubscribed": 0
}
},
{
"channel": "push",
"status": {
"all": 1336,
"complained": 0,
"hardbounced": 0,
"invalid": 0,
"subscribed": 0,
"subscribed_sendable": 0,
"suspended": 0,
"unconfirmed": 0,
"unconfirmed_sendable": 0,
"unsubscribed": 0
}
},
{
"channel": "email",
"status": {
"all": 1336,
"complained": 0,
"hardbounced": 434,
"invalid": 0,
"subscribed": 842,
"subscribed_sendable": 842,
"suspended": 0,
"unconfirmed": 0,
"unconfirmed_sendable": 0,
"unsubscribed": 60
}
}
],
"in_progress": false,
"last_count_time": "counted at 2024-04-19T13:31:08Z in 231.374251ms",
"list_id": 1,
"refresh_task_id": "",
"updated": "2024-04-19T13:31:08.927Z"
}
]
},
"error": 0,
"error_text": "Successful operation"
}"""

# Note the leading space before <xml>: it is on the docs page.
RESOURCE_TASKS_STATUS_RESPONSE_XML = b""" <xml>
<data>
<status>completed</status>
<progress>100</progress>
<result>
<channels>
<channel>sms</channel>
<status>
<all>1336</all>
<complained>0</complained>
<hardbounced>0</hardbounced>
<invalid>0</invalid>
<subscribed>0</subscribed>
<subscribed_sendable>0</subscribed_sendable>
<suspended>0</suspended>
<unconfirmed>0</unconfirmed>
<unconfirmed_sendable>0</unconfirmed_sendable>
<unsubscribed>0</unsubscribed>
</status>
</channels>
<channels>
<channel>push</channel>
<status>
<all>1336</all>
<complained>0</complained>
<hardbounced>0</hardbounced>
<invalid>0</invalid>
<subscribed>0</subscribed>
<subscribed_sendable>0</subscribed_sendable>
<suspended>0</suspended>
<unconfirmed>0</unconfirmed>
<unconfirmed_sendable>0</unconfirmed_sendable>
<unsubscribed>0</unsubscribed>
</status>
</channels>
<channels>
<channel>email</channel>
<status>
<all>1336</all>
<complained>0</complained>
<hardbounced>434</hardbounced>
<invalid>0</invalid>
<subscribed>842</subscribed>
<subscribed_sendable>842</subscribed_sendable>
<suspended>0</suspended>
<unconfirmed>0</unconfirmed>
<unconfirmed_sendable>0</unconfirmed_sendable>
<unsubscribed>60</unsubscribed>
</status>
</channels>
<in_progress>false</in_progress>
<last_count_time>counted at 2024-04-19T13:31:08Z in 231.374251ms</last_count_time>
<list_id>1</list_id>
<refresh_task_id></refresh_task_id>
<updated>2024-04-19T13:31:08.927Z</updated>
</result>
</data>
<error>0</error>
<error_text>Successful operation</error_text>
</xml>"""

# --- admin/senders/queue/stats/ (admin-senders-queue-stats.txt) ----------------------------

ADMIN_SENDER_QUEUE_STATS_REQUEST_JSON = b"""{
"token": "abcdefghijklmnqrstuvwxyz",
"id": 119
}"""

ADMIN_SENDER_QUEUE_STATS_REQUEST_XML = b"""<xml>
<token>abcdefghijklmnqrstuvwxyz</token>
<id>119</id>
</xml>"""

ADMIN_SENDER_QUEUE_STATS_RESPONSE_JSON = b"""{
"data": [
{
"account_id": 306,
"campaign_id": 4591,
"hold": 0,
"isp": "",
"new": 100,
"proc": 100,
"retry": 0,
"total": 200
},
{
"account_id": 306,
"campaign_id": 4914,
"hold": 80,
"isp": "",
"new": 10,
"proc": 10,
"retry": 40,
"total": 140
}
],
"error": 0,
"error_text": "Successful operation"
}"""

ADMIN_SENDER_QUEUE_STATS_RESPONSE_XML = b"""<xml>
<data>
<account_id>306</account_id>
<campaign_id>4591</campaign_id>
<hold>0</hold>
<isp></isp>
<new>100</new>
<proc>100</proc>
<retry>0</retry>
<total>200</total>
</data>
<data>
<account_id>306</account_id>
<campaign_id>4914</campaign_id>
<hold>80</hold>
<isp></isp>
<new>10</new>
<proc>10</proc>
<retry>40</retry>
<total>140</total>
</data>
<error>0</error>
<error_text>Successful operation</error_text>
</xml>"""

# --- relations/get_counter (relations-get_counter.txt) -------------------------------------

RELATIONS_GET_COUNTER_REQUEST_JSON = b"""{
"token": "abcdefghijklmnqrstuvwxyz",
"rel_id": 3,
"profile_id": "5d63dbdb439e7306b596c5d0"
}"""

RELATIONS_GET_COUNTER_REQUEST_XML = b"""<xml>
<token>abcdefghijklmnqrstuvwxyz</token>
<rel_id>3</rel_id>
<profile_id>5d63dbdb439e7306b596c5d0</profile_id>
</xml>"""

RELATIONS_GET_COUNTER_RESPONSE_JSON = b"""{
"data": {
"profile_id": "669e6968ebf4ac52b623a997",
"profile_xxh": "5af1023c84f66195",
"props": {}
},
"error": 0,
"error_text": "Successful operation"
}"""

RELATIONS_GET_COUNTER_RESPONSE_XML = b"""<xml>
<data>
<profile_id>669e6968ebf4ac52b623a997</profile_id>
<profile_xxh>5af1023c84f66195</profile_xxh>
<props/>
</data>
<error>0</error>
<error_text>Successful operation</error_text>
</xml>"""

#: Every (JSON, XML) response pair, keyed by a short name.
RESPONSE_PAIRS: dict[str, tuple[bytes, bytes]] = {
    "segments.get_counters": (
        SEGMENTS_GET_COUNTERS_RESPONSE_JSON,
        SEGMENTS_GET_COUNTERS_RESPONSE_XML,
    ),
    "segments.refresh_counters": (
        SEGMENTS_REFRESH_COUNTERS_RESPONSE_JSON,
        SEGMENTS_REFRESH_COUNTERS_RESPONSE_XML,
    ),
    "segment tasks.status": (
        SEGMENT_TASKS_STATUS_RESPONSE_JSON,
        SEGMENT_TASKS_STATUS_RESPONSE_XML,
    ),
    "resources.refresh_counters": (
        RESOURCES_REFRESH_COUNTERS_RESPONSE_JSON,
        RESOURCES_REFRESH_COUNTERS_RESPONSE_XML,
    ),
    "resource tasks.status": (
        RESOURCE_TASKS_STATUS_RESPONSE_JSON,
        RESOURCE_TASKS_STATUS_RESPONSE_XML,
    ),
    "admin.sender_queue_stats": (
        ADMIN_SENDER_QUEUE_STATS_RESPONSE_JSON,
        ADMIN_SENDER_QUEUE_STATS_RESPONSE_XML,
    ),
    "relations.get_counter": (
        RELATIONS_GET_COUNTER_RESPONSE_JSON,
        RELATIONS_GET_COUNTER_RESPONSE_XML,
    ),
}

#: Every (JSON, XML) request pair, keyed by a short name.
REQUEST_PAIRS: dict[str, tuple[bytes, bytes]] = {
    "segments.get_counters": (
        SEGMENTS_GET_COUNTERS_REQUEST_JSON,
        SEGMENTS_GET_COUNTERS_REQUEST_XML,
    ),
    "segments.refresh_counters": (
        SEGMENTS_REFRESH_COUNTERS_REQUEST_JSON,
        SEGMENTS_REFRESH_COUNTERS_REQUEST_XML,
    ),
    "segment tasks.status": (
        SEGMENT_TASKS_STATUS_REQUEST_JSON,
        SEGMENT_TASKS_STATUS_REQUEST_XML,
    ),
    "resources.refresh_counters": (
        RESOURCES_REFRESH_COUNTERS_REQUEST_JSON,
        RESOURCES_REFRESH_COUNTERS_REQUEST_XML,
    ),
    "resource tasks.status": (
        RESOURCE_TASKS_STATUS_REQUEST_JSON,
        RESOURCE_TASKS_STATUS_REQUEST_XML,
    ),
    "admin.sender_queue_stats": (
        ADMIN_SENDER_QUEUE_STATS_REQUEST_JSON,
        ADMIN_SENDER_QUEUE_STATS_REQUEST_XML,
    ),
    "relations.get_counter": (
        RELATIONS_GET_COUNTER_REQUEST_JSON,
        RELATIONS_GET_COUNTER_REQUEST_XML,
    ),
}
