-- Deletions of users and resources: IAM users, instances, Kubernetes objects,
-- application records.
SELECT time, actor_user_name AS actor, api_operation AS operation, metadata_product_name AS product, status_id
FROM events
WHERE api_operation IN ('DeleteUser', 'DeleteRole', 'TerminateInstances', 'DeleteBucket', 'delete', 'record.delete')
   OR (class_uid = 3001 AND activity_id = 6)  -- OCSF Account Change: Delete (userdel, Okta, auditd DEL_USER)
ORDER BY time, actor
