-- Access to secrets and payroll records: Kubernetes Secrets, KMS decryption,
-- and the payroll application's reads and updates.
SELECT time, actor_user_name AS actor, api_operation AS operation, status_id, metadata_product_name AS product
FROM events
WHERE list_contains([r.type FOR r IN resources], 'secrets')
   OR api_operation IN ('Decrypt', 'GetSecretValue', 'payroll.view', 'payroll.update')
ORDER BY time, actor
