-- Failed logins per user per day (sshd, console sign-in, Okta, ...): OCSF
-- Authentication (3002) with status Failure (2). Days are UTC days.
SELECT actor_user_name AS "user", CAST(time AS DATE) AS day, count(*) AS failed_logins
FROM events
WHERE class_uid = 3002 AND status_id = 2
GROUP BY actor_user_name, CAST(time AS DATE)
ORDER BY day, failed_logins DESC, "user"
