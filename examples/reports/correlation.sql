-- Everything in one correlation id: a W3C trace id, a request id, or the
-- correlation_uid the enricher derives. Parameter: id.
SELECT time, metadata_product_name AS product, actor_user_name AS actor, api_operation AS operation, status_id
FROM events
WHERE trace_id = '{id}' OR api_request_uid = '{id}' OR correlation_uid = '{id}'
ORDER BY time, seq
