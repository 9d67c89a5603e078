-- Access to secrets and payroll records: Kubernetes Secrets (one row per
-- secret), KMS decryption, and the payroll application's reads and updates.
SELECT time, actor_user_name AS actor, api_operation AS operation, status_id, metadata_product_name AS product,
       CAST(NULL AS VARCHAR) AS secret
FROM events
WHERE api_operation IN ('Decrypt', 'GetSecretValue', 'payroll.view', 'payroll.update')
UNION ALL
SELECT time, actor, operation, status_id, product, coalesce(r['namespace'], '') || '/' || coalesce(r['name'], '')
FROM (
    SELECT time, actor_user_name AS actor, api_operation AS operation, status_id,
           metadata_product_name AS product, unnest(resources) AS r
    FROM events
)
WHERE r['type'] = 'secrets'
ORDER BY time, actor
