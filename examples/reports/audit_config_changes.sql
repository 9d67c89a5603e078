-- Changes to audit configuration itself: trails stopped or changed, log sinks,
-- audit rules (auditctl), Kubernetes audit sinks. Tagged by the enricher (the
-- tag is a value of `metadata_labels` in `unmapped`, matched as text so that
-- the report needs no JSON functions), or by operation when it was not in the
-- chain.
SELECT time, actor_user_name AS actor, api_operation AS operation, metadata_product_name AS product
FROM events
WHERE unmapped LIKE '%"audit-config-change"%'
   OR api_operation IN ('StopLogging', 'DeleteTrail', 'UpdateTrail', 'PutEventSelectors', 'DeleteFlowLogs')
ORDER BY time
