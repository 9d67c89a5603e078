//! Recall and false positives of the default rule set on the public secret
//! scanners' fixtures in `shared/corpus/secrets` (read at test time, never
//! copied: see `shared/corpus/SOURCES.md` for their licences and labels).
//!
//! Each fixture is turned into units, each with the fixture's own label:
//! - noseyparker `rule-examples.jsonl`: one unit per example (`positive`) or
//!   negative example (`negative`), run as a `message`; a unit is "found" when
//!   anything in it is redacted.
//! - secretlint snapshots: each expected finding of an `ng.*` case (the text
//!   at its `range` in `output.json`) is a positive, found when that text no
//!   longer appears intact; each non-comment line of an `ok.*` case is a
//!   negative, found when the line does not come out intact. A case's
//!   `.secretlintrc.json` options are translated into this plugin's config
//!   (`allows` → `allow`, `enableIDScanRule: false` → `disable`).
//! - whispers: each file runs whole; every value-carrying line inside a
//!   `compliant` region is a negative, inside a `noncompliant` one a positive.
//! - detect-secrets: each file runs whole; the lines of `baseline.file` are
//!   positives, the other non-comment lines negatives.
//! - gitleaks: the OpenSSH key file is a positive; the `.env` lines are
//!   negatives but for the database password.
//!
//! The upstream labels answer "does *this scanner rule* fire", not "does this
//! text hold a credential", and the two differ: a negative example of one
//! Slack rule is a Slack token of another kind, a negative of a length rule is
//! `password = 'open_sesame'`, a positive of the S3 rule is a bucket name. So
//! `RELABEL` lists, with a reason each, the units whose label changes for an
//! audit-log redactor (principles in its doc). Those labels were written by
//! the same work that wrote the rules, so each changed unit was then judged
//! again, blind (text and fixture label only), by a second reviewer; where
//! the verdict differs, `REVIEWED` overrides `RELABEL` with it. The test
//! prints recall and false-positive rate per fixture set and overall under
//! the upstream and the reviewed labels, and the misses and false positives
//! by id, then asserts the targets on the reviewed labels: recall >= 99 %,
//! false positives <= 1 %.

use redact::Redact;
use serde_json::{Value, json};
use sluice_plugin_sdk::{Outcome, Transform};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Positive,
    Negative,
    /// Neither: not counted (say why in `RELABEL` or `REVIEWED`).
    Excluded,
}

use Label::{Excluded, Negative, Positive};

/// Units whose label differs for an audit-log redactor: (set, unit id, label,
/// reason). The principles:
/// - `credential`: the text assigns a real-looking value to a key naming a
///   password, secret or token, or holds a credential of a known format; a
///   redactor must mask it, whatever one scanner rule's scope says.
/// - `placeholder`: the value is a variable, template, repeated character or
///   a word standing for a password (`$Password`, `'password'`, `######`).
/// - `identifier`: ARNs, account ids, bucket names, client/tenant ids, user
///   names, public keys: audit evidence, kept by policy.
/// - `hex`: a bare hex string with nothing naming it a secret: kept, because
///   hashes and commit ids must not be masked in audit data.
/// - `near-miss`: a random-looking token that fails one vendor format by a
///   character (too long, glued to a letter): not labelled a secret, but a
///   redactor that masks unknown random tokens in free text masks it by design;
///   excluded from both counts (how many were masked is printed).
/// - `context`: the secret is recognisable only from structure the text does
///   not carry (a YAML parent key two lines up).
/// - `not-input`: not something a scanner reads (a `pragma: allowlist` comment
///   that turns a scanner off; a user name next to a password).
const RELABEL: &[(&str, &str, Label, &str)] = &[
    // noseyparker: positives whose value is a placeholder
    ("noseyparker", "np.aws.2:positive:1-2", Negative, "placeholder: 40 times `a`"),
    ("noseyparker", "np.generic.4:positive:3", Negative, "placeholder: `password=######`"),
    ("noseyparker", "np.generic.4:positive:5", Negative, "placeholder: `PASSWORD=mypassword`"),
    ("noseyparker", "np.generic.5:positive:10", Negative, "placeholder: `YOURPASSWROD`"),
    ("noseyparker", "np.gradle.1:positive:1-4", Negative, "placeholder: `password 'password'`, `\"SOME_PASSWORD\"`"),
    (
        "noseyparker",
        "np.odbc.1:positive:5-7",
        Negative,
        "placeholder: `Password=myPassword` (the connection-string docs' example)",
    ),
    ("noseyparker", "np.odbc.1:positive:9", Negative, "placeholder: `pwd=#{datastore['DBPASSWORD']}`"),
    ("noseyparker", "np.psexec.1:positive:3-5", Negative, "placeholder: `-p $Password`, `-p %nothing%`, `-p PASSWORD`"),
    ("noseyparker", "np.vmware.1:positive:2-3", Negative, "placeholder: `-Password \"$password\"`, `$ESXipass`"),
    // noseyparker: negatives (or identifier-only positives) that hold a credential
    ("noseyparker", "np.auth0.1:negative:1", Positive, "credential: AUTH0_CLIENT_SECRET=\"...\""),
    (
        "noseyparker",
        "np.aws.1:positive:1-2",
        Positive,
        "credential: an AWS access key id in free text (masked by policy)",
    ),
    (
        "noseyparker",
        "np.aws.2:negative:1-5",
        Positive,
        "credential: a value under an AWS secret key (negative only for its length)",
    ),
    ("noseyparker", "np.generic.1:negative:1", Positive, "credential: an Azure AD client secret (`xxx8Q~...`)"),
    ("noseyparker", "np.generic.1:negative:2", Positive, "credential: secret_access_key = '...'"),
    ("noseyparker", "np.generic.4:negative:1", Positive, "credential: password = 'open_sesame'"),
    ("noseyparker", "np.generic.5:negative:1-3", Positive, "credential: password = \"123\" / super$ecret"),
    ("noseyparker", "np.generic.9:negative:1-2", Positive, "credential: the same text is a positive of another rule"),
    ("noseyparker", "np.generic.10:negative:1", Positive, "credential: the same text is a positive of another rule"),
    ("noseyparker", "np.jwt.1:negative:2", Positive, "credential: the same text is a positive of another rule"),
    ("noseyparker", "np.gitalk.1:negative:2", Positive, "credential: \"clientSecret\": \"...\""),
    ("noseyparker", "np.github.5:positive:1", Positive, "credential: GITHUB_SECRET=... next to the client id"),
    ("noseyparker", "np.linkedin.1:positive:2", Positive, "credential: LINKEDIN_SECRET=... next to the key"),
    ("noseyparker", "np.twitter.1:positive:2", Positive, "credential: TWITTER_API_SECRET=... next to the key"),
    ("noseyparker", "np.hashicorp.1:negative:1", Positive, "credential: the same text is a positive of another rule"),
    ("noseyparker", "np.hashicorp.2:negative:1", Positive, "credential: the same text is a positive of another rule"),
    ("noseyparker", "np.hashicorp.3:negative:1", Positive, "credential: the same text is a positive of another rule"),
    ("noseyparker", "np.hashicorp.4:negative:1", Positive, "credential: the same text is a positive of another rule"),
    ("noseyparker", "np.hashicorp.5:negative:1", Positive, "credential: the same text is a positive of another rule"),
    ("noseyparker", "np.hashicorp.6:negative:1", Positive, "credential: the same text is a positive of another rule"),
    ("noseyparker", "np.slack.2:negative:1-3", Positive, "credential: a Slack token of another kind"),
    ("noseyparker", "np.slack.4:negative:1-3", Positive, "credential: a Slack token of another kind"),
    ("noseyparker", "np.slack.6:negative:1-4", Positive, "credential: a Slack token of another kind"),
    ("noseyparker", "np.msteams.1:negative:1", Positive, "credential: a Teams incoming-webhook URL"),
    ("noseyparker", "np.mongodb.1:negative:1", Positive, "credential: the password of a MongoDB socket URL"),
    ("noseyparker", "np.newrelic.1:negative:2", Positive, "credential: licenseKey=... (negative only for its format)"),
    (
        "noseyparker",
        "np.newrelic.2:negative:1",
        Positive,
        "credential: license_key: ... (negative only for its format)",
    ),
    ("noseyparker", "np.newrelic.8:negative:1", Positive, "credential: apiKey=... (negative only for its format)"),
    ("noseyparker", "np.newrelic.9:negative:1", Positive, "credential: deployKey=... (negative only for its format)"),
    ("noseyparker", "np.npm.1:negative:1", Positive, "credential: NPM_TOKEN=\"<uuid>\" (npm's legacy token form)"),
    ("noseyparker", "np.odbc.1:negative:4", Positive, "credential: server->password = \"busybox@\""),
    ("noseyparker", "np.okta.1:negative:2", Positive, "credential: okta_api_token: ..."),
    ("noseyparker", "np.okta.1:negative:4", Positive, "credential: okta_api_key: ..."),
    ("noseyparker", "np.postgres.1:negative:1-2", Positive, "credential: a PostgreSQL password (URL, query string)"),
    ("noseyparker", "np.twitch.1:negative:1", Positive, "credential: TWITCH_STREAM_KEY = \"...\""),
    ("noseyparker", "np.twitter.2:negative:1", Positive, "credential: Twitter OAuth consumer key and secret"),
    // noseyparker: random-looking tokens that miss one vendor format
    ("noseyparker", "np.aws.1:negative:2", Excluded, "near-miss"),
    ("noseyparker", "np.azure.4:negative:1-3", Excluded, "near-miss"),
    ("noseyparker", "np.azure.4:negative:5", Excluded, "near-miss"),
    ("noseyparker", "np.dtrack.1:negative:1-3", Excluded, "near-miss"),
    ("noseyparker", "np.hashicorp.2:negative:3", Excluded, "near-miss"),
    ("noseyparker", "np.kagi.1:negative:1-3", Excluded, "near-miss"),
    ("noseyparker", "np.okta.1:negative:3", Excluded, "near-miss"),
    ("noseyparker", "np.twitch.1:negative:2", Excluded, "near-miss"),
    // secretlint
    (
        "secretlint",
        "aws/ng.AWS_Account_ID#1",
        Negative,
        "identifier: an AWS account id (a finding only with enableIDScanRule)",
    ),
    ("secretlint", "azure/ng.ad_tenant_id#1", Negative, "identifier: an Azure tenant id (a UUID)"),
    ("secretlint", "azure/ng.azure_client_id#1", Negative, "identifier: an Azure client id (a UUID)"),
    (
        "secretlint",
        "aws/ok.AWS_Secret_Access_Key:4",
        Positive,
        "credential: an encrypted value under AWS_SECRET_ACCESS_KEY (masked, fail closed)",
    ),
    (
        "secretlint",
        "basicauth/ok.database-urls-not-detected:8-9",
        Positive,
        "credential: database URL passwords (left by the basic-auth rule to the database rule)",
    ),
    (
        "secretlint",
        "no-k8s-kind-secret/ng.kind-secret:8",
        Positive,
        "credential: the password of a Kubernetes Secret (an ng case without a range)",
    ),
    (
        "secretlint",
        "no-k8s-kind-secret/ng.kind-secret-multiple:21",
        Positive,
        "credential: the password of a Kubernetes Secret (an ng case without a range)",
    ),
    ("secretlint", "1password/ok.ops_prefix_but_is_not_jwt:1", Excluded, "near-miss"),
    ("secretlint", "aws/ok.AWS_Secret_Access_Key:2", Excluded, "near-miss: base64 under ANY_KEY"),
    ("secretlint", "cloudflare/ok.valid:7-8", Excluded, "near-miss"),
    ("secretlint", "cloudflare/ok.valid:11", Excluded, "near-miss"),
    ("secretlint", "databricks/ok.valid:7", Excluded, "near-miss"),
    ("secretlint", "github/ok.valid:1", Excluded, "near-miss"),
    ("secretlint", "groq/ok.valid:8", Excluded, "near-miss"),
    ("secretlint", "groq/ok.valid:11", Excluded, "near-miss"),
    ("secretlint", "groq/ok.valid:14", Excluded, "near-miss"),
    ("secretlint", "groq/ok.valid:17", Excluded, "near-miss"),
    ("secretlint", "hashicorp-vault/ok.valid:11", Excluded, "near-miss"),
    ("secretlint", "hashicorp-vault/ok.valid:14", Excluded, "near-miss"),
    ("secretlint", "notion/ok.valid:10", Excluded, "near-miss"),
    ("secretlint", "notion/ok.valid:13", Excluded, "near-miss"),
    ("secretlint", "notion/ok.valid:16", Excluded, "near-miss"),
    ("secretlint", "notion/ok.valid:19", Excluded, "near-miss"),
    ("secretlint", "notion/ok.valid:22", Excluded, "near-miss"),
    ("secretlint", "openai/ok.valid:1-4", Excluded, "near-miss"),
    (
        "secretlint",
        "privatekey/placeholder-short-base64:2",
        Excluded,
        "near-miss: base64 of the alphabet as a key body",
    ),
    ("secretlint", "secp256k1-privatekey/ok.valid:2", Excluded, "near-miss"),
    ("secretlint", "sendgrid/ok.valid:2", Excluded, "near-miss"),
    ("secretlint", "sendgrid/ok.valid:5", Excluded, "near-miss"),
    ("secretlint", "sendgrid/ok.valid:7", Excluded, "near-miss"),
    ("secretlint", "sendgrid/ok.valid:9", Excluded, "near-miss"),
    ("secretlint", "sendgrid/ok.valid:11", Excluded, "near-miss"),
    // whispers: lines of a noncompliant block that are not the planted secret
    ("whispers", ".dockercfg:24", Negative, "context: the email next to the credential"),
    ("whispers", ".pypirc:10-11", Negative, "context: repository and user name next to the password"),
    ("whispers", "connection.config:11", Negative, "context: the element around the connection string"),
    ("whispers", "hardcoded.json:20", Negative, "context: the login next to the password"),
    ("whispers", "hardcoded.xml:21", Negative, "context: the login next to the password"),
    ("whispers", "hardcoded.yml:18", Negative, "context: the login next to the password"),
    ("whispers", "integration.conf:23", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.conf:25", Negative, "context: metadata"),
    ("whispers", "integration.conf:28", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.conf:32", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.conf:36", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.conf:40", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.xml:24", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.xml:26", Negative, "context: metadata"),
    ("whispers", "integration.xml:29", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.xml:33", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.xml:37", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.xml:41", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.yml:15", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.yml:17-18", Negative, "context: metadata, the name of a name/value pair"),
    ("whispers", "integration.yml:20", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.yml:22", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "integration.yml:24", Negative, "context: the name of a name/value pair (its value is masked)"),
    ("whispers", "jdbc.xml:20-21", Negative, "context: attributes of the element holding the connection URL"),
    ("whispers", "jdbc.xml:23-26", Negative, "context: attributes of the element holding the connection URL"),
    ("whispers", "jdbc.xml:28-31", Negative, "context: attributes of the element holding the connection URL"),
    ("whispers", "jdbc.xml:33-34", Negative, "context: attributes of the element holding the connection URL"),
    ("whispers", "privatekeys.xml:9", Negative, "context: BEGIN line of a key whose body line is masked"),
    ("whispers", "privatekeys.xml:11", Negative, "context: END line of a key whose body line is masked"),
    ("whispers", "privatekeys.yml:6-7", Negative, "context: the key and BEGIN line of a key whose body line is masked"),
    ("whispers", "privatekeys.yml:9-10", Negative, "context: END line and quote of a key whose body line is masked"),
    ("whispers", "settings.cfg:8", Negative, "context: the block around the password"),
    ("whispers", "paths.yml:7-20", Negative, "identifier: file paths (whispers reports paths, not credentials)"),
    ("whispers", "hardcoded.json:15-17", Excluded, "context: list items under a passwords key two lines up"),
    ("whispers", "hardcoded.yml:14-16", Excluded, "context: list items under a passwords key two lines up"),
    ("whispers", "excluded.json:9", Positive, "credential: compliant only under whispers' own exclude config"),
    ("whispers", "excluded.xml:10", Positive, "credential: compliant only under whispers' own exclude config"),
    ("whispers", "integration.conf:6", Excluded, "pii: an email address, masked by the personal-data policy"),
    ("whispers", "integration.json:4", Excluded, "pii: an email address, masked by the personal-data policy"),
    ("whispers", "integration.xml:6", Excluded, "pii: an email address, masked by the personal-data policy"),
    ("whispers", "integration.yml:4", Excluded, "pii: an email address, masked by the personal-data policy"),
    // detect-secrets
    ("detect-secrets", "config.yaml:3", Negative, "hex: `1234567890a`, a bare hex string"),
    ("detect-secrets", "sample.diff:10", Negative, "hex: `\"012345678a\"`, a bare hex string"),
    ("detect-secrets", "sample.diff:34", Negative, "hex: a bare 32-digit hex string"),
    ("detect-secrets", "short_files/last_line.ini:5", Negative, "hex: `BEEF0123456789a`, a bare hex string"),
    ("detect-secrets", "config.yaml:4", Excluded, "stale: the baseline's line numbers predate an edit of this file"),
    ("detect-secrets", "config.yaml:14", Excluded, "stale: the baseline's line numbers predate an edit of this file"),
    (
        "detect-secrets",
        "config.yaml:5",
        Positive,
        "credential: an AWS access key id in text (the stale baseline's line 4)",
    ),
    ("detect-secrets", "config.yaml:13", Positive, "credential: a secret key's value (the stale baseline's line 14)"),
    (
        "detect-secrets",
        "config.ini:32",
        Positive,
        "credential: real_secret_which_isnt_an_i_d = ... (newer than the baseline)",
    ),
    ("detect-secrets", "files/private_key:2-3", Positive, "credential: body and END line of the key on line 1"),
    ("detect-secrets", "short_files/middle_line.yml:4", Excluded, "context: a value under a password key two lines up"),
    ("detect-secrets", "config.ini:26", Excluded, "not-input: `# pragma: allowlist secret` turns the scanner off"),
    ("detect-secrets", "config.yaml:12", Excluded, "not-input: `# pragma: allowlist secret` turns the scanner off"),
];

/// The blind review's verdicts where they differ from `RELABEL` (or from the
/// unit builders' defaults): the reviewer saw each changed unit's text and
/// fixture label, not ours, and answered mask (`Positive`), keep
/// (`Negative`) or either (`Excluded`: a placeholder whose masking is
/// harmless, a token whose nature cannot be told). Of the 244 changed units
/// the reviewer agreed with 165 and reversed one outright (an INI
/// continuation line in detect-secrets we had kept as a bare hex string); 36
/// of our masks or keeps were "either" to the reviewer, and 42 of our
/// exclusions mask or keep. Not taken: three GCP `.p12` units whose
/// input is not in the corpus (the reviewer suggested dropping them; they
/// stay excluded) and four e-mail addresses the reviewer would keep as
/// identity metadata, which the personal-data layer masks by policy (they
/// stay excluded: that layer is not what these fixtures measure).
const REVIEWED: &[(&str, &str, Label, &str)] = &[
    (
        "noseyparker",
        "np.aws.2:positive:1",
        Excluded,
        "either: The secret-key field holds 40 repeated 'a's, an obvious placeholder; masking it is harmless.",
    ),
    (
        "noseyparker",
        "np.aws.2:positive:2",
        Excluded,
        "either: The secret-key field holds 40 repeated 'a's, an obvious placeholder; masking it is harmless.",
    ),
    (
        "noseyparker",
        "np.aws.2:negative:2",
        Excluded,
        "either: A run of 'a's ending in 'end' is an obvious placeholder in a secret-key field.",
    ),
    (
        "noseyparker",
        "np.aws.2:negative:3",
        Excluded,
        "either: Runs of 'a'/'b' plus 'end' are an obvious placeholder in a secret-key field.",
    ),
    (
        "noseyparker",
        "np.aws.2:negative:4",
        Excluded,
        "either: A run of 'a's ending in 'end' is an obvious placeholder in a secret-key field.",
    ),
    (
        "noseyparker",
        "np.azure.4:negative:3",
        Positive,
        "mask: A real-looking Azure DevOps PAT (random body + JQQJ99 + AAASAZDO signature), one char short; a truncated PAT is still secret material.",
    ),
    (
        "noseyparker",
        "np.generic.1:negative:2",
        Excluded,
        "either: secret_access_key holds a short value that is mostly a keyboard sequence (abcdefg12346); likely a dummy, but masking is harmless.",
    ),
    (
        "noseyparker",
        "np.generic.4:positive:3",
        Excluded,
        "either: password=###### is a repeated-character placeholder; host, user and db name must stay.",
    ),
    (
        "noseyparker",
        "np.generic.4:positive:5",
        Excluded,
        "either: AUTO_SESSION_PASSWORD=mypassword is a placeholder ('my' + the word password); masking it is harmless, and the username stays.",
    ),
    (
        "noseyparker",
        "np.generic.5:positive:10",
        Excluded,
        "either: 'YOURPASSWROD' is a fill-in-your-password placeholder; masking is harmless.",
    ),
    (
        "noseyparker",
        "np.gradle.1:positive:1",
        Excluded,
        "either: Gradle credentials with username 'user' and password 'password', a placeholder; masking is harmless.",
    ),
    (
        "noseyparker",
        "np.gradle.1:positive:2",
        Excluded,
        "either: The password is the placeholder SOME_PASSWORD; the URL and hostname stay.",
    ),
    (
        "noseyparker",
        "np.gradle.1:positive:3",
        Excluded,
        "either: Gradle credentials with the placeholder password 'password'.",
    ),
    (
        "noseyparker",
        "np.gradle.1:positive:4",
        Excluded,
        "either: Gradle credentials with the placeholder password \"password\".",
    ),
    (
        "noseyparker",
        "np.hashicorp.2:negative:3",
        Positive,
        "mask: A legacy HashiCorp Vault batch token (b.AAAAAQ..., long random body); bare, but the format is distinctive.",
    ),
    (
        "noseyparker",
        "np.newrelic.1:negative:2",
        Excluded,
        "either: The licenseKey is an obvious a1b2c3... placeholder sequence with an NRAL suffix; masking is harmless.",
    ),
    (
        "noseyparker",
        "np.newrelic.8:negative:1",
        Excluded,
        "either: The Pixie apiKey is an obvious placeholder (a1b2c3d4, non-hex g7h8...); masking is harmless.",
    ),
    (
        "noseyparker",
        "np.newrelic.9:negative:1",
        Excluded,
        "either: The Pixie deployKey is an obvious placeholder (d4c3b2a1, non-hex h8g7...); masking is harmless.",
    ),
    (
        "noseyparker",
        "np.odbc.1:positive:5",
        Excluded,
        "either: Password=myPassword is a placeholder; the IP, catalog and User ID stay.",
    ),
    (
        "noseyparker",
        "np.odbc.1:positive:6",
        Excluded,
        "either: Password=myPassword is a placeholder; the IP, catalog and User ID stay.",
    ),
    ("noseyparker", "np.odbc.1:positive:7", Excluded, "either: Pwd=myPassword is a placeholder; server and uid stay."),
    (
        "noseyparker",
        "np.odbc.1:positive:9",
        Excluded,
        "either: pwd is a template interpolation #{datastore['DBPASSWORD']}, not a secret; masking is harmless.",
    ),
    (
        "noseyparker",
        "np.odbc.1:negative:4",
        Excluded,
        "either: A hard-coded password literal, but for the 'anonymous' account (a conventional public FTP password); masking is harmless.",
    ),
    (
        "noseyparker",
        "np.okta.1:negative:2",
        Excluded,
        "either: okta_api_token is all zeros plus 'aa', an obvious placeholder.",
    ),
    (
        "noseyparker",
        "np.okta.1:negative:3",
        Positive,
        "mask: An Okta-format API token (00-prefix, 42 chars, mostly random) after an okta key; the ABCDEFGHIJKL run looks doctored, but the rest is token material.",
    ),
    (
        "noseyparker",
        "np.postgres.1:negative:1",
        Excluded,
        "either: The PostgreSQL URI password is the placeholder word 'secret'; masking is harmless, and user/host must stay.",
    ),
    (
        "noseyparker",
        "np.postgres.1:negative:2",
        Excluded,
        "either: password=secret in the URI query is the placeholder word 'secret'; masking is harmless.",
    ),
    (
        "noseyparker",
        "np.psexec.1:positive:3",
        Excluded,
        "either: PsExec -p $Password is a variable reference, not a secret; the host and user stay.",
    ),
    (
        "noseyparker",
        "np.psexec.1:positive:4",
        Excluded,
        "either: PsExec -p %nothing% is an environment-variable reference, not a secret.",
    ),
    (
        "noseyparker",
        "np.psexec.1:positive:5",
        Excluded,
        "either: PsExec -p PASSWORD is the literal placeholder word; masking is harmless, and the DOMAIN\\ADMINISTRATOR user stays.",
    ),
    (
        "noseyparker",
        "np.twitch.1:negative:2",
        Positive,
        "mask: A Twitch stream key (live_<id>_<random>), possibly truncated, is still the secret.",
    ),
    (
        "noseyparker",
        "np.vmware.1:positive:2",
        Excluded,
        "either: Connect-VIServer -Password \"$password\" is a variable reference, not a secret.",
    ),
    (
        "noseyparker",
        "np.vmware.1:positive:3",
        Excluded,
        "either: Connect-VIServer -password $ESXipass is a variable reference, not a secret.",
    ),
    (
        "secretlint",
        "1password/ok.ops_prefix_but_is_not_jwt:1",
        Positive,
        "mask: ops_ token whose (header-damaged) base64 payload decodes to a 1Password service-account blob with muk AES key, secretKey and srpX; real key material despite fixture's not-JWT label.",
    ),
    (
        "secretlint",
        "cloudflare/ok.valid:7",
        Negative,
        "keep: Wrong prefix cf_ with obviously placeholder alphabet-sequence body; not a secret.",
    ),
    (
        "secretlint",
        "cloudflare/ok.valid:8",
        Negative,
        "keep: Glued xcfat_ with obviously placeholder alphabet-sequence body; not a secret.",
    ),
    (
        "secretlint",
        "cloudflare/ok.valid:11",
        Negative,
        "keep: cfat_ near-miss whose body is an obvious alphabet-sequence placeholder; masking harmless but not required.",
    ),
    (
        "secretlint",
        "databricks/ok.valid:7",
        Negative,
        "keep: dapi near-miss with obvious placeholder body ABCDEF1234567890...; not a secret.",
    ),
    (
        "secretlint",
        "groq/ok.valid:8",
        Negative,
        "keep: Mid-word gsk_ with obvious placeholder alphabet/digit-sequence body; not a secret.",
    ),
    (
        "secretlint",
        "groq/ok.valid:11",
        Negative,
        "keep: Over-long gsk_ with obvious placeholder sequence body; not a secret.",
    ),
    ("secretlint", "groq/ok.valid:14", Negative, "keep: sk_ with obvious placeholder sequence body; not a secret."),
    (
        "secretlint",
        "groq/ok.valid:17",
        Negative,
        "keep: gsk_ with dash and obvious placeholder sequence body; not a secret.",
    ),
    (
        "secretlint",
        "notion/ok.valid:10",
        Negative,
        "keep: ntn_ near-miss with obvious placeholder sequence body; not a secret.",
    ),
    (
        "secretlint",
        "notion/ok.valid:13",
        Negative,
        "keep: ntn_ near-miss with obvious placeholder sequence body; not a secret.",
    ),
    (
        "secretlint",
        "notion/ok.valid:16",
        Negative,
        "keep: ntn_ near-miss with obvious placeholder sequence body; not a secret.",
    ),
    (
        "secretlint",
        "notion/ok.valid:19",
        Negative,
        "keep: Uppercase NTN_ with obvious placeholder sequence body; not a secret.",
    ),
    (
        "secretlint",
        "notion/ok.valid:22",
        Negative,
        "keep: Glued xntn_ with obvious placeholder sequence body; not a secret.",
    ),
    (
        "secretlint",
        "openai/ok.valid:1",
        Positive,
        "mask: sk- plus 48 random-looking chars is the OpenAI secret-key shape; only the T3BlbkFJ marker was swapped for 'abcdefgh', still a real-looking key.",
    ),
    (
        "secretlint",
        "openai/ok.valid:2",
        Positive,
        "mask: sk-proj- followed by ~150 random chars is an OpenAI project key; missing T3BlbkFJ marker does not make it safe to archive.",
    ),
    (
        "secretlint",
        "openai/ok.valid:3",
        Positive,
        "mask: sk-svcacct- long random OpenAI service-account key shape; real-looking credential.",
    ),
    (
        "secretlint",
        "openai/ok.valid:4",
        Positive,
        "mask: sk-admin- long random OpenAI admin key shape; real-looking credential.",
    ),
    (
        "secretlint",
        "secp256k1-privatekey/ok.valid:2",
        Negative,
        "keep: Bare hex string (x + 63 hex, a mangled near-miss of the secp256k1 key) - policy keeps bare hex/hashes.",
    ),
    (
        "secretlint",
        "sendgrid/ok.valid:9",
        Negative,
        "keep: Only 'SG.' plus the key-id segment - the non-secret identifier part of a SendGrid key; masking low-harm but not needed.",
    ),
    (
        "whispers",
        "hardcoded.json:15",
        Positive,
        "mask: Item of the 02_hardcoded_passwords list (key one line up): a password, recognisable from context only.",
    ),
    (
        "whispers",
        "hardcoded.json:16",
        Positive,
        "mask: Item of the 02_hardcoded_passwords list (key two lines up): a password, recognisable from context only.",
    ),
    (
        "whispers",
        "hardcoded.json:17",
        Positive,
        "mask: Item of the 02_hardcoded_passwords list (key three lines up): a password, recognisable from context only.",
    ),
    (
        "whispers",
        "hardcoded.yml:14",
        Positive,
        "mask: Item of the 02_hardcoded_passwords YAML list (key one line up): a password by context.",
    ),
    (
        "whispers",
        "hardcoded.yml:15",
        Positive,
        "mask: Item of the 02_hardcoded_passwords YAML list (key two lines up): a password by context.",
    ),
    (
        "whispers",
        "hardcoded.yml:16",
        Positive,
        "mask: Item of the 02_hardcoded_passwords YAML list (key three lines up): a password by context.",
    ),
    (
        "whispers",
        "privatekeys.xml:9",
        Excluded,
        "either: PEM armour line '-----BEGIN RSA KEY-----' carries no key material; masking as part of the key block is fine, keeping is fine.",
    ),
    (
        "whispers",
        "privatekeys.xml:11",
        Excluded,
        "either: PEM armour END line; no key material itself, part of a private-key block.",
    ),
    (
        "whispers",
        "privatekeys.yml:7",
        Excluded,
        "either: PEM armour BEGIN line inside a YAML string; no key material itself.",
    ),
    ("whispers", "privatekeys.yml:9", Excluded, "either: PEM armour END line; no key material itself."),
    (
        "detect-secrets",
        "config.ini:26",
        Positive,
        "mask: password = 12345678901234 is a hardcoded password; the allowlist pragma is a scanner hint, not a reason to archive it.",
    ),
    (
        "detect-secrets",
        "config.yaml:3",
        Excluded,
        "either: Neutral key with dummy value 1234567890a; only the 'credentials:' parent two lines up suggests a credential.",
    ),
    (
        "detect-secrets",
        "config.yaml:4",
        Negative,
        "keep: Bare YAML key 'nested:'; nothing on the line (baseline finding here is stale line numbering).",
    ),
    (
        "detect-secrets",
        "config.yaml:5",
        Excluded,
        "either: AKIA-format access key id (policy says mask) but obviously a placeholder (AKIA + TEST*4); either is acceptable.",
    ),
    (
        "detect-secrets",
        "config.yaml:12",
        Positive,
        "mask: api_key with random 32-char value; real-looking API key, pragma allowlist is irrelevant to redaction.",
    ),
    (
        "detect-secrets",
        "config.yaml:14",
        Negative,
        "keep: Empty line; baseline finding here is a stale line number (belongs to line 13).",
    ),
    ("detect-secrets", "files/private_key:3", Excluded, "either: PEM armour END line; no key material itself."),
    (
        "detect-secrets",
        "short_files/last_line.ini:5",
        Positive,
        "mask: Continuation value of 'secrets_for_no_one_to_find =' (three lines up) alongside hunter2/password123 - a secret by context.",
    ),
    (
        "detect-secrets",
        "short_files/middle_line.yml:4",
        Positive,
        "mask: Value of 'secure:' under 'password:' (line above) - a password by context.",
    ),
];

/// `a:1-3` → `a:1`, `a:2`, `a:3`; any other id → itself.
fn expand(id: &str) -> Vec<String> {
    if let Some((head, range)) = id.rsplit_once(':')
        && let Some((from, to)) = range.split_once('-')
        && let (Ok(from), Ok(to)) = (from.parse::<usize>(), to.parse::<usize>())
    {
        return (from..=to).map(|n| format!("{head}:{n}")).collect();
    }
    vec![id.to_string()]
}

struct Unit {
    set: &'static str,
    id: String,
    upstream: Label,
    label: Label,
    found: bool,
    text: String,
}

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/secrets");
    assert!(
        dir.is_dir(),
        "the secret corpus is missing at {}: this test reads it at run time and must not be skipped",
        dir.display()
    );
    dir
}

struct Runner {
    plugins: HashMap<String, Redact>,
}

impl Runner {
    /// The text after redaction under `config`.
    fn redact(&mut self, config: &Value, text: &str) -> String {
        let key = config.to_string();
        let plugin = self.plugins.entry(key).or_insert_with(|| Redact::init(config.clone()).expect("valid config"));
        let event = json!({"message": text});
        // the scan that spares unchanged events the decoding must agree with the walk
        let scanned = plugin.unchanged(&event.to_string());
        match plugin.process(event.as_object().cloned().unwrap()) {
            Outcome::Keep(e) => {
                assert!(!scanned, "the scan called a text unchanged that the walk changed: {text}");
                e.get("message").and_then(Value::as_str).unwrap_or("").to_string()
            }
            Outcome::Unchanged => text.to_string(),
            other => panic!("expected keep, got {other:?}"),
        }
    }
}

/// Which input lines came out unchanged: a line is intact when the output
/// still holds an identical line (each output line used once).
fn intact_lines(input: &str, output: &str) -> Vec<bool> {
    let mut left: HashMap<&str, usize> = HashMap::new();
    for line in output.lines() {
        *left.entry(line).or_default() += 1;
    }
    input
        .lines()
        .map(|line| match left.get_mut(line) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .collect()
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('#') || t.starts_with("//") || t.starts_with(';') || t.starts_with("<!--")
}

// ---- noseyparker -----------------------------------------------------------

fn noseyparker(runner: &mut Runner, units: &mut Vec<Unit>) {
    let text = fs::read_to_string(corpus().join("noseyparker/rule-examples.jsonl")).unwrap();
    let mut ordinal: HashMap<(String, String), usize> = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let rule = row["rule_id"].as_str().unwrap().to_string();
        let label = row["label"].as_str().unwrap().to_string();
        let n = ordinal.entry((rule.clone(), label.clone())).or_default();
        *n += 1;
        let categories: Vec<&str> = row["categories"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let upstream = if label == "positive" { Positive } else { Negative };
        // a positive example of a rule for identifiers only (bucket names,
        // ARNs, client ids) is evidence to keep, for an audit log
        let default = if upstream == Positive && !categories.contains(&"secret") && categories.contains(&"identifier") {
            Negative
        } else {
            upstream
        };
        let input = row["text"].as_str().unwrap();
        let output = runner.redact(&json!({}), input);
        units.push(Unit {
            set: "noseyparker",
            id: format!("{rule}:{label}:{n}"),
            upstream,
            label: default,
            found: output != input,
            text: input.to_string(),
        });
    }
}

// ---- secretlint ------------------------------------------------------------

/// This plugin's config for a secretlint case's options.
fn secretlint_config(case: &Path) -> Value {
    let Ok(text) = fs::read_to_string(case.join(".secretlintrc.json")) else {
        return json!({});
    };
    let rc: Value = serde_json::from_str(&text).unwrap();
    let mut allow = Vec::new();
    let mut disable = Vec::new();
    for rule in rc["rules"].as_array().into_iter().flatten() {
        let options = &rule["options"];
        for a in options["allows"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            allow.push(match a.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
                Some(re) => re.to_string(),
                None => regex_escape(a),
            });
        }
        if options["enableIDScanRule"] == json!(false) {
            disable.push("aws-access-key-id");
        }
    }
    json!({"allow": allow, "disable": disable})
}

fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

fn secretlint(runner: &mut Runner, units: &mut Vec<Unit>) {
    let root = corpus().join("secretlint");
    let mut rules: Vec<PathBuf> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    rules.sort();
    for rule_dir in rules {
        let rule = rule_dir.file_name().unwrap().to_string_lossy().to_string();
        let mut cases: Vec<PathBuf> = fs::read_dir(&rule_dir).unwrap().map(|e| e.unwrap().path()).collect();
        cases.sort();
        for case_dir in cases {
            let case = case_dir.file_name().unwrap().to_string_lossy().to_string();
            let expected: Value =
                serde_json::from_str(&fs::read_to_string(case_dir.join("output.json")).unwrap()).unwrap();
            let input_name = expected["filePath"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
            let Ok(input) = fs::read_to_string(case_dir.join(&input_name)) else {
                // binary inputs (.p12) were not copied into the corpus
                units.push(Unit {
                    set: "secretlint",
                    id: format!("{rule}/{case}"),
                    upstream: if case.starts_with("ng.") { Positive } else { Negative },
                    label: Excluded,
                    found: false,
                    text: format!("(input {input_name} not in the corpus)"),
                });
                continue;
            };
            let config = secretlint_config(&case_dir);
            let output = runner.redact(&config, &input);
            let messages = expected["messages"].as_array().unwrap();
            if messages.is_empty() {
                let intact = intact_lines(&input, &output);
                for (i, line) in input.lines().enumerate() {
                    if line.trim().is_empty() || is_comment(line) {
                        continue;
                    }
                    units.push(Unit {
                        set: "secretlint",
                        id: format!("{rule}/{case}:{}", i + 1),
                        upstream: Negative,
                        label: Negative,
                        found: !intact[i],
                        text: line.to_string(),
                    });
                }
                continue;
            }
            let chars: Vec<char> = input.chars().collect();
            let mut remaining: HashMap<String, usize> = HashMap::new();
            for (n, message) in messages.iter().enumerate() {
                let range = message["range"].as_array().unwrap();
                let (from, to) = (range[0].as_u64().unwrap() as usize, range[1].as_u64().unwrap() as usize);
                let secret: String = chars[from.min(chars.len())..to.min(chars.len())].iter().collect();
                let masked = *remaining
                    .entry(secret.clone())
                    .or_insert_with(|| input.matches(&secret).count() - output.matches(&secret).count());
                let found = masked > 0;
                if found {
                    *remaining.get_mut(&secret).unwrap() -= 1;
                }
                units.push(Unit {
                    set: "secretlint",
                    id: format!("{rule}/{case}#{}", n + 1),
                    upstream: Positive,
                    label: Positive,
                    found,
                    text: secret,
                });
            }
        }
    }
}

// ---- whispers --------------------------------------------------------------

fn whispers(runner: &mut Runner, units: &mut Vec<Unit>) {
    let root = corpus().join("whispers");
    let mut files = Vec::new();
    for entry in fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.push(path);
        }
    }
    files.sort();
    let marker = regex::Regex::new(r"(?i)\b(non|in)?compliant\b").unwrap();
    let keyed = regex::Regex::new(r#"(?i)^\s*["<]?(non|in)?compliant[A-Za-z]"#).unwrap();
    let bare_key = regex::Regex::new(r#"^\s*-?\s*["']?[\w.\- ]+["']?\s*:\s*[\[{]?\s*$"#).unwrap();
    let tag_only = regex::Regex::new(r"^\s*</?[\w:.\-]+\s*/?>\s*$").unwrap();
    for file in files {
        let name = file.strip_prefix(&root).unwrap().to_string_lossy().to_string();
        let input = fs::read_to_string(&file).unwrap();
        let output = runner.redact(&json!({}), &input);
        let intact = intact_lines(&input, &output);
        let mut region: Option<Label> = None;
        for (i, line) in input.lines().enumerate() {
            let trimmed = line.trim();
            let label = if let Some(m) = keyed.captures(line) {
                // <compliantApiToken>..</compliantApiToken>: a unit by its own name
                Some(if m.get(1).is_some() { Positive } else { Negative })
            } else if let Some(m) = marker.captures(line) {
                region = if trimmed.starts_with("</") {
                    None
                } else if m.get(1).is_some() {
                    Some(Positive)
                } else {
                    Some(Negative)
                };
                continue;
            } else {
                region
            };
            let Some(label) = label else { continue };
            if trimmed.is_empty()
                || is_comment(line)
                || bare_key.is_match(line)
                || tag_only.is_match(line)
                || trimmed.chars().all(|c| "{}[](),;".contains(c))
            {
                continue;
            }
            units.push(Unit {
                set: "whispers",
                id: format!("{name}:{}", i + 1),
                upstream: label,
                label,
                found: !intact[i],
                text: line.to_string(),
            });
        }
    }
}

// ---- detect-secrets ----------------------------------------------------------

fn detect_secrets(runner: &mut Runner, units: &mut Vec<Unit>) {
    let root = corpus().join("detect-secrets");
    let baseline: Value = serde_json::from_str(&fs::read_to_string(root.join("baseline.file")).unwrap()).unwrap();
    let mut positives: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (file, results) in baseline["results"].as_object().unwrap() {
        for r in results.as_array().unwrap() {
            positives.entry(file.clone()).or_default().push(r["line_number"].as_u64().unwrap() as usize);
        }
    }
    let files = [
        "config.env",
        "config.ini",
        "config.md",
        "config.yaml",
        "config2.yaml",
        "only_comments.yaml",
        "files/private_key",
        "sample.diff",
        "short_files/last_line.ini",
        "short_files/middle_line.yml",
    ];
    for name in files {
        let input = fs::read_to_string(root.join(name)).unwrap();
        let output = runner.redact(&json!({}), &input);
        let intact = intact_lines(&input, &output);
        let lines = positives.get(name).cloned().unwrap_or_default();
        for (i, line) in input.lines().enumerate() {
            let positive = lines.contains(&(i + 1));
            if !positive && (line.trim().is_empty() || is_comment(line)) {
                continue;
            }
            let label = if positive { Positive } else { Negative };
            units.push(Unit {
                set: "detect-secrets",
                id: format!("{name}:{}", i + 1),
                upstream: label,
                label,
                found: !intact[i],
                text: line.to_string(),
            });
        }
    }
}

// ---- gitleaks ----------------------------------------------------------------

fn gitleaks(runner: &mut Runner, units: &mut Vec<Unit>) {
    let root = corpus().join("gitleaks");
    let key = fs::read_to_string(root.join("id_ed25519")).unwrap();
    let output = runner.redact(&json!({}), &key);
    units.push(Unit {
        set: "gitleaks",
        id: "id_ed25519".into(),
        upstream: Positive,
        label: Positive,
        found: output != key,
        text: key.lines().next().unwrap_or("").to_string(),
    });
    let env = fs::read_to_string(root.join(".env.prod")).unwrap();
    let output = runner.redact(&json!({}), &env);
    let intact = intact_lines(&env, &output);
    for (i, line) in env.lines().enumerate() {
        // gitleaks' finding in this file is the database password
        let label = if line.starts_with("DB_PASSWORD=") { Positive } else { Negative };
        units.push(Unit {
            set: "gitleaks",
            id: format!(".env.prod:{}", i + 1),
            upstream: label,
            label,
            found: !intact[i],
            text: line.to_string(),
        });
    }
}

// ---- report ------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct Counts {
    positives: usize,
    found: usize,
    negatives: usize,
    false_positives: usize,
}

impl Counts {
    fn add(&mut self, label: Label, found: bool) {
        match label {
            Positive => {
                self.positives += 1;
                self.found += usize::from(found);
            }
            Negative => {
                self.negatives += 1;
                self.false_positives += usize::from(found);
            }
            Excluded => {}
        }
    }
    fn recall(&self) -> f64 {
        if self.positives == 0 { 1.0 } else { self.found as f64 / self.positives as f64 }
    }
    fn fp_rate(&self) -> f64 {
        if self.negatives == 0 { 0.0 } else { self.false_positives as f64 / self.negatives as f64 }
    }
    fn line(&self) -> String {
        format!(
            "recall {:6.2}% ({}/{}), false positives {:5.2}% ({}/{})",
            100.0 * self.recall(),
            self.found,
            self.positives,
            100.0 * self.fp_rate(),
            self.false_positives,
            self.negatives
        )
    }
}

#[test]
fn secret_corpus_recall_and_false_positives() {
    let mut runner = Runner { plugins: HashMap::new() };
    let mut units = Vec::new();
    noseyparker(&mut runner, &mut units);
    secretlint(&mut runner, &mut units);
    whispers(&mut runner, &mut units);
    detect_secrets(&mut runner, &mut units);
    gitleaks(&mut runner, &mut units);

    // every relabel names a unit that exists, once
    let mut relabelled: HashMap<(&str, String), (Label, &str)> = HashMap::new();
    for &(set, id, label, reason) in RELABEL {
        for id in expand(id) {
            assert!(units.iter().any(|u| u.set == set && u.id == id), "RELABEL names no unit: {set} {id}");
            assert!(relabelled.insert((set, id.clone()), (label, reason)).is_none(), "{set} {id} relabelled twice");
        }
    }
    for unit in &mut units {
        if let Some(&(label, _)) = relabelled.get(&(unit.set, unit.id.clone())) {
            unit.label = label;
        }
    }
    // the blind review: each verdict names a unit whose label it changes
    for &(set, id, label, verdict) in REVIEWED {
        let unit = units.iter_mut().find(|u| u.set == set && u.id == id);
        let unit = unit.unwrap_or_else(|| panic!("REVIEWED names no unit: {set} {id}"));
        assert_ne!(unit.label, label, "REVIEWED agrees with RELABEL: {set} {id}");
        unit.label = label;
        relabelled.insert((set, id.to_string()), (label, verdict));
    }

    let sets = ["noseyparker", "secretlint", "whispers", "detect-secrets", "gitleaks"];
    let verbose = std::env::var_os("CORPUS_VERBOSE").is_some();
    let mut totals = (Counts::default(), Counts::default());
    let mut per_set = Vec::new();
    println!("secret corpus ({}), reviewed labels | upstream labels:", corpus().display());
    for set in sets {
        let (mut adjusted, mut upstream) = (Counts::default(), Counts::default());
        let mut reasons: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for unit in units.iter().filter(|u| u.set == set) {
            adjusted.add(unit.label, unit.found);
            upstream.add(unit.upstream, unit.found);
            if let Some(&(_, reason)) = relabelled.get(&(unit.set, unit.id.clone())) {
                let class = reason.split(':').next().unwrap().to_string();
                let entry = reasons.entry(class).or_default();
                entry.0 += 1;
                entry.1 += usize::from(unit.found);
            }
            if unit.label != unit.upstream && !relabelled.contains_key(&(unit.set, unit.id.clone())) {
                // the defaults of the unit builders: identifier-only rule
                // examples, binary inputs not in the corpus
                let class = if unit.label == Excluded { "not-input (binary)" } else { "identifier (category)" };
                let entry = reasons.entry(class.into()).or_default();
                entry.0 += 1;
                entry.1 += usize::from(unit.found);
            }
        }
        println!("  {set:<15} {}", adjusted.line());
        println!("  {:<15} {}   (upstream labels)", "", upstream.line());
        for (class, (n, masked)) in &reasons {
            println!("  {:<15}   relabelled {class}: {n} (redacted {masked})", "");
        }
        for (a, b) in [(&mut totals.0, adjusted), (&mut totals.1, upstream)] {
            a.positives += b.positives;
            a.found += b.found;
            a.negatives += b.negatives;
            a.false_positives += b.false_positives;
        }
        per_set.push((set, adjusted));
    }
    println!("  {:<15} {}", "overall", totals.0.line());
    println!("  {:<15} {}   (upstream labels)", "", totals.1.line());
    let misses: Vec<&Unit> = units.iter().filter(|u| u.label == Positive && !u.found).collect();
    let false_positives: Vec<&Unit> = units.iter().filter(|u| u.label == Negative && u.found).collect();
    for (what, list) in [("missed", &misses), ("false positive", &false_positives)] {
        for u in list {
            println!("  {what}: {} {} {:?}", u.set, u.id, u.text.chars().take(160).collect::<String>());
        }
    }
    if let Some(path) = std::env::var_os("CORPUS_DUMP") {
        // every unit whose label differs from the fixture's, whole, for a
        // review of `RELABEL` by someone who did not write it
        let mut out = String::new();
        for u in units.iter().filter(|u| u.label != u.upstream) {
            let reason = relabelled.get(&(u.set, u.id.clone())).map_or("default of the unit builder", |r| r.1);
            let row = json!({"set": u.set, "id": u.id, "upstream": format!("{:?}", u.upstream),
                "label": format!("{:?}", u.label), "reason": reason, "redacted": u.found, "text": u.text});
            out.push_str(&row.to_string());
            out.push('\n');
        }
        fs::write(&path, out).expect("write CORPUS_DUMP");
    }
    if verbose {
        for u in &units {
            println!(
                "  unit {} {} {:?} found={} {:?}",
                u.set,
                u.id,
                u.label,
                u.found,
                u.text.chars().take(120).collect::<String>()
            );
        }
    }
    // the targets hold per set too where a set is large enough to measure a
    // rate of 1 %; a smaller one (detect-secrets has 14 positives: one miss is
    // 7 %) may have one miss and one false positive
    for (set, counts) in &per_set {
        let misses = counts.positives - counts.found;
        assert!(counts.recall() >= 0.99 || counts.positives < 100 && misses <= 1, "{set}: {}", counts.line());
        assert!(
            counts.fp_rate() <= 0.01 || counts.negatives < 100 && counts.false_positives <= 1,
            "{set}: {}",
            counts.line()
        );
    }
    assert!(totals.0.recall() >= 0.99 && totals.0.fp_rate() <= 0.01, "overall: {}", totals.0.line());
    // on the fixtures' own labels the targets are not met (84.0 % recall, 13.7 %
    // false positives when this was written): floors, so that a change that makes
    // it worse by that measure fails too
    assert!(totals.1.recall() >= 0.835 && totals.1.fp_rate() <= 0.14, "overall, upstream labels: {}", totals.1.line());
}
