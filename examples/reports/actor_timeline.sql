-- Everything one actor did in a time window, across every source.
-- Parameters: actor (a user name; its e-mail form matches too), from, to (ISO 8601, UTC).
SELECT time, metadata_product_name AS product, api_operation AS operation, class_uid, status_id,
       src_endpoint_ip AS address, message
FROM events
WHERE (actor_user_name = '{actor}' OR split_part(actor_user_name, '@', 1) = '{actor}')
  AND time >= TIMESTAMPTZ '{from}' AND time < TIMESTAMPTZ '{to}'
ORDER BY time, seq
