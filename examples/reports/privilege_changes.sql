-- Privilege grants and role changes: IAM policy attachments, application role
-- grants and revocations, and changes to Kubernetes RBAC objects.
SELECT time, actor_user_name AS actor, api_operation AS operation, metadata_product_name AS product,
       [r.type || ':' || coalesce(r.name, '') FOR r IN resources] AS targets
FROM events
WHERE api_operation IN ('AttachUserPolicy', 'AttachRolePolicy', 'PutUserPolicy', 'PutRolePolicy', 'AddUserToGroup',
                        'role.grant', 'role.revoke')
   OR (api_operation IN ('create', 'update', 'patch', 'delete')
       AND list_has_any([r.type FOR r IN resources], ['roles', 'rolebindings', 'clusterroles', 'clusterrolebindings']))
ORDER BY time, actor
