-- Successful logins from a source address the user had not logged in from
-- before (within the archive): the first login from each (user, address).
SELECT time, actor_user_name AS user, src_endpoint_ip AS address, metadata_product_name AS product
FROM (
    SELECT *, row_number() OVER (PARTITION BY actor_user_name, src_endpoint_ip ORDER BY time, seq) AS nth
    FROM events
    WHERE class_uid = 3002 AND status_id = 1 AND src_endpoint_ip IS NOT NULL
)
WHERE nth = 1
ORDER BY time, user
