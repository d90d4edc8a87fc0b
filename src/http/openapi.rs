//! The OpenAPI document of the enqueue API, generated from the Rust types: the response
//! and error types of [`super::api`] and the payload types of `lifecycle-jobs` (its
//! `utoipa` feature). One `POST /v1/jobs/<slug>` per public job kind, with that kind's
//! payload. Internal kinds (mail delivery, seat release, no-op) are not enqueued over HTTP:
//! they have no path, only their payload schemas (what the ledger and the outbox hold).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use lifecycle_jobs::{
    BatchItem, BatchJob, BatchRefusal, BatchRequest, BatchResponse, Enqueued, Job, JobStatus,
};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi, ToSchema};

use super::api::{ErrorBody, IDEMPOTENCY_KEY_PATTERN, MAX_IDEMPOTENCY_KEY_BYTES};

/// The name of the bearer-token security scheme in the document.
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lifecycle enqueue API",
        description = "Hands account-lifecycle jobs to the lifecycle worker and shows them."
    ),
    paths(super::api::show, super::api::enqueue_batch, super::tokens::check),
    components(schemas(
        Enqueued,
        BatchRequest,
        BatchJob,
        BatchResponse,
        BatchItem,
        BatchRefusal,
        ErrorBody,
        JobStatus,
        super::tokens::TokenCheckRequest,
        super::tokens::TokenCheckResponse,
    )),
    modifiers(&BearerScheme, &JobKinds)
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Adds every kind of `lifecycle_jobs::for_each_job!`: its payload schema (with the schemas
/// it refers to, such as `Actor`) and, for a public kind only, `POST /v1/jobs/<slug>`.
/// Internal kinds get a schema (what the ledger and the outbox hold) but no path.
struct JobKinds;

impl Modify for JobKinds {
    fn modify(&self, document: &mut Document) {
        macro_rules! add_kinds {
            ($($kind:ident),* $(,)?) => {
                $(add_kind::<lifecycle_jobs::$kind>(document);)*
            };
        }
        lifecycle_jobs::for_each_job!(add_kinds);
    }
}

/// What `components(schemas(J))` of the derive adds, plus J's path when J is public.
fn add_kind<J: Job + ToSchema>(document: &mut Document) {
    let components = document.components.get_or_insert_with(Default::default);
    let mut schemas = Vec::new();
    J::schemas(&mut schemas);
    components.schemas.extend(schemas);
    components
        .schemas
        .insert(J::name().into_owned(), J::schema());
    if lifecycle_jobs::is_public(J::NAME) {
        let (path, item) = enqueue_path::<J>();
        document.paths.paths.insert(path, item);
    }
}

fn schema_ref<T: ToSchema>() -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn json<T: ToSchema>() -> Content {
    Content::new(Some(schema_ref::<T>()))
}

fn enqueue_path<J: Job + ToSchema>() -> (String, PathItem) {
    let operation = OperationBuilder::new()
        .operation_id(Some(format!("enqueue_{}", J::SLUG.replace('-', "_"))))
        .summary(Some(format!("Enqueue a {} job", J::NAME)))
        .description(Some(
            "Idempotency-Key: scoped to the payload's account (another account's key is \
             another key). The same key with the same payload gives the same job, enqueued \
             once (`created: false`); the same key with another kind or payload is a 409 \
             naming the job that holds it. At most 200 bytes of visible ASCII. \
             The token's scope applies: the kinds it may enqueue, whether it may send \
             `\"actor\": \"system\"`, its accounts (403 naming `kind`, `actor` or \
             `account_id`).",
        ))
        .parameter(
            utoipa::openapi::path::ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(utoipa::openapi::path::ParameterIn::Header)
                .required(Required::False)
                .schema(Some(idempotency_key_schema())),
        )
        .request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json::<J>())
                .required(Some(Required::True))
                .build(),
        ))
        .response(
            "202",
            ResponseBuilder::new()
                .description("Accepted")
                .content("application/json", json::<Enqueued>())
                .build(),
        )
        .response(
            "400",
            error_response("Bad input: the field at fault is named"),
        )
        .response("401", error_response("Missing or wrong bearer token"))
        .response(
            "403",
            error_response(
                "Outside the token's scope: `field` is `kind` (a kind it may not enqueue), \
                 `actor` (\"system\" without that permission) or `account_id` (an account \
                 not among its accounts)",
            ),
        )
        .response(
            "409",
            error_response(
                "The Idempotency-Key already holds another job (another kind or payload) of \
                 the account: `job_id` names it; nothing was enqueued",
            ),
        )
        .response("413", error_response("Body larger than the payload limit"))
        .response("415", error_response("Body not JSON"))
        .response(
            "503",
            error_response("The job store is unavailable: nothing enqueued; try again later"),
        )
        .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
        .build();
    (
        format!("/v1/jobs/{}", J::SLUG),
        PathItem::new(HttpMethod::Post, operation),
    )
}

/// The `Idempotency-Key` header as the API takes it: visible ASCII (HTTP trims the spaces
/// around a header value), not blank, at most [`MAX_IDEMPOTENCY_KEY_BYTES`] bytes.
fn idempotency_key_schema() -> RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_IDEMPOTENCY_KEY_BYTES))
        .pattern(Some(IDEMPOTENCY_KEY_PATTERN))
        .into()
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json::<ErrorBody>())
        .build()
}

/// The document, built once.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}

/// `GET /v1/openapi.json`: open to all, it holds no secret.
pub async fn serve_document() -> axum::response::Response {
    match document().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the OpenAPI document");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_path_and_payload_schema() {
        let document = document();
        let schemas = &document.components.as_ref().unwrap().schemas;
        for (name, slug) in lifecycle_jobs::KINDS {
            let path = format!("/v1/jobs/{slug}");
            if !lifecycle_jobs::is_public(name) {
                assert!(
                    !document.paths.paths.contains_key(&path),
                    "{name} is internal: not enqueued over HTTP"
                );
                continue;
            }
            let item = document
                .paths
                .paths
                .get(&path)
                .unwrap_or_else(|| panic!("{name}: no {path} in the OpenAPI document"));
            let body = item.post.as_ref().unwrap().request_body.as_ref().unwrap();
            let Some(RefOr::Ref(reference)) = &body.content["application/json"].schema else {
                panic!("{path}: the payload is not a schema reference");
            };
            let schema_name = reference.ref_location.rsplit('/').next().unwrap();
            assert!(schemas.contains_key(schema_name), "{schema_name} missing");
            let responses = &item.post.as_ref().unwrap().responses.responses;
            for status in ["202", "400", "401", "403", "409", "413", "415"] {
                assert!(responses.contains_key(status), "{path}: no {status}");
            }
        }
        assert!(schemas.contains_key("Actor"));
        assert!(document.paths.paths.contains_key("/v1/jobs/{id}"));
    }

    /// Walks every payload schema of the document and checks each constraint against the
    /// constant the validator enforces, and the validator at the constraint's edge: an id
    /// field states `minimum` = [`lifecycle_jobs::MIN_ID`] (one less is refused), a country
    /// the 249 codes, an email its length and pattern, a name its length and pattern.
    #[test]
    fn the_schemas_state_what_the_validators_enforce() {
        use serde_json::{Value, json};
        let document = serde_json::to_value(document()).unwrap();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let mut checked = 0;
        for (name, schema) in schemas {
            let Some(properties) = schema["properties"].as_object() else {
                continue;
            };
            for (field, property) in properties {
                let types: Vec<&str> = match &property["type"] {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                let place = format!("{name}.{field}");
                let is_payload = lifecycle_jobs::KINDS
                    .iter()
                    .any(|(kind, _)| kind_schema(kind) == Some(name.as_str()));
                if !is_payload {
                    continue;
                }
                if types.contains(&"integer") {
                    assert_eq!(
                        property["minimum"],
                        json!(lifecycle_jobs::MIN_ID),
                        "{place}"
                    );
                    assert_eq!(property["maximum"], json!(i64::MAX), "{place}");
                    checked += 1;
                }
                if field.ends_with("country") {
                    let codes: Vec<&str> = property["enum"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{place}: no enum"))
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    assert_eq!(codes, lifecycle_jobs::COUNTRY_CODES, "{place}");
                    checked += 1;
                }
                match field.as_str() {
                    "language" => {
                        assert_eq!(
                            property["enum"],
                            json!(lifecycle_jobs::LANGUAGES),
                            "{place}"
                        );
                        checked += 1;
                    }
                    "email" => {
                        assert_eq!(property["maxLength"], json!(lifecycle_jobs::MAX_EMAIL_LEN));
                        assert_eq!(property["pattern"], json!(lifecycle_jobs::EMAIL_PATTERN));
                        assert_eq!(property["format"], "email", "{place}");
                        checked += 1;
                    }
                    "first_name" | "last_name" => {
                        assert_eq!(property["maxLength"], json!(lifecycle_jobs::MAX_NAME_CHARS));
                        assert_eq!(property["pattern"], json!(lifecycle_jobs::NAME_PATTERN));
                        assert_eq!(property["minLength"], 1, "{place}");
                        checked += 1;
                    }
                    "purchase_reference" => {
                        assert_eq!(
                            property["maxLength"],
                            json!(lifecycle_jobs::MAX_REFERENCE_CHARS)
                        );
                        assert_eq!(
                            property["pattern"],
                            json!(lifecycle_jobs::NO_CONTROL_PATTERN)
                        );
                        checked += 1;
                    }
                    "token" => {
                        assert_eq!(property["pattern"], json!(lifecycle_jobs::token_pattern()));
                        checked += 1;
                    }
                    _ => {}
                }
            }
        }
        // 14 kinds, each with an account and at least one other id, plus the strings.
        assert!(checked >= 40, "only {checked} constraints found");
        let actor = &schemas["Actor"]["oneOf"][1];
        assert_eq!(actor["minimum"], json!(lifecycle_jobs::MIN_ID));

        // The validators at the edges the schemas state.
        let create = |email: &str, first_name: &str, country: &str, role_id: i64| {
            json!({
                "account_id": 1, "actor": "system", "first_name": first_name, "last_name": "L",
                "email": email, "country": country, "language": "es", "role_id": role_id,
                "team_id": 1,
            })
            .to_string()
        };
        let field = |json: String| {
            lifecycle_jobs::validate_json("create-user", &json)
                .err()
                .map(|refusal| refusal.field)
        };
        let name_at_limit = "é".repeat(lifecycle_jobs::MAX_NAME_CHARS);
        let name_over = "é".repeat(lifecycle_jobs::MAX_NAME_CHARS + 1);
        assert_eq!(
            field(create(
                "a@b.es",
                &name_at_limit,
                "ES",
                lifecycle_jobs::MIN_ID
            )),
            None
        );
        assert_eq!(
            field(create("a@b.es", "Ana", "ES", lifecycle_jobs::MIN_ID - 1)),
            Some("role_id".into())
        );
        assert_eq!(
            field(create("a@b.es", &name_over, "ES", 1)),
            Some("first_name".into())
        );
        assert_eq!(
            field(create("a@b.es", "Ana", "UK", 1)),
            Some("country".into())
        );
        assert_eq!(
            field(create("a@b.es", "\u{0085}", "ES", 1)),
            Some("first_name".into())
        );
        let long_email = format!("{}@b.es", "a".repeat(lifecycle_jobs::MAX_EMAIL_LEN));
        assert_eq!(
            field(create(&long_email, "Ana", "ES", 1)),
            Some("email".into())
        );
        assert!(!regex_like_email(&long_email[..10]));
        for code in lifecycle_jobs::COUNTRY_CODES {
            assert_eq!(field(create("a@b.es", "Ana", code, 1)), None, "{code}");
        }
    }

    /// What [`lifecycle_jobs::EMAIL_PATTERN`] says, by hand: one `@`, a dot after it.
    fn regex_like_email(text: &str) -> bool {
        text.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
    }

    /// The schema name of a kind's payload.
    fn kind_schema(kind: &str) -> Option<&'static str> {
        Some(match kind {
            "user::deactivate_salesperson" => "DeactivateSalesperson",
            "user::deactivate" => "DeactivateUser",
            "records::reassign" => "ReassignRecords",
            "license::release" => "ReleaseLicense",
            "user::create" => "CreateUser",
            "user::confirm" => "ConfirmUser",
            "user::activate_salesperson" => "ActivateSalesperson",
            "user::reactivate" => "ReactivateUser",
            "user::unlock" => "UnlockUser",
            "user::record_login" => "RecordLogin",
            "user::record_activity" => "RecordActivity",
            "customer::purchase_made" => "PurchaseMade",
            "mail::send" => "SendEmail",
            "system::noop" => "Noop",
            "sweep::release_due_licenses" => "ReleaseDueLicenses",
            "sweep::prune_job_history" => "PruneJobHistory",
            _ => return None,
        })
    }
}
