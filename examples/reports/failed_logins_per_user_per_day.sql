-- Failed logins per user per day (sshd, console sign-in, Okta, ...): OCSF
-- Authentication (3002) with status Failure (2).
SELECT actor_user_name AS user, strftime(time, '%Y-%m-%d') AS day, count(*) AS failed_logins
FROM events
WHERE class_uid = 3002 AND status_id = 2
GROUP BY ALL
ORDER BY day, failed_logins DESC, user
