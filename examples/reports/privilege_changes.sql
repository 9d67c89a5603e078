-- Privilege grants and role changes: IAM policy attachments, application role
-- grants and revocations, and changes to Kubernetes RBAC objects (one row per
-- object changed).
SELECT time, actor_user_name AS actor, api_operation AS operation, metadata_product_name AS product,
       CAST(NULL AS VARCHAR) AS target
FROM events
WHERE api_operation IN ('AttachUserPolicy', 'AttachRolePolicy', 'PutUserPolicy', 'PutRolePolicy', 'AddUserToGroup',
                        'role.grant', 'role.revoke')
UNION ALL
SELECT time, actor, operation, product, r['type'] || ':' || coalesce(r['name'], '') AS target
FROM (
    SELECT time, actor_user_name AS actor, api_operation AS operation, metadata_product_name AS product,
           unnest(resources) AS r
    FROM events
    WHERE api_operation IN ('create', 'update', 'patch', 'delete')
)
WHERE r['type'] IN ('roles', 'rolebindings', 'clusterroles', 'clusterrolebindings')
ORDER BY time, actor
