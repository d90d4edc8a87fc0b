//! The OpenAPI schemas of the validated fields, built from the constants the validators
//! use, so the document cannot say something else than what is enforced. Each field names
//! its function with `#[schema(schema_with = ...)]`.

use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type};

use super::{
    COUNTRY_CODES, EMAIL_PATTERN, LANGUAGES, MAX_EMAIL_LEN, MAX_NAME_CHARS, MIN_ID, NAME_PATTERN,
    NO_CONTROL_PATTERN,
};

fn nullable(kind: Type) -> SchemaType {
    SchemaType::from_iter([kind, Type::Null])
}

fn id_of(kind: SchemaType) -> Object {
    ObjectBuilder::new()
        .schema_type(kind)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(MIN_ID as isize))
        // The wire form is an i64: a larger number is refused as out of range.
        .maximum(Some(i64::MAX as isize))
        .build()
}

/// A positive id.
pub(crate) fn id() -> Object {
    id_of(SchemaType::Type(Type::Integer))
}

/// A positive id, or absent (`null`).
pub(crate) fn optional_id() -> Object {
    id_of(nullable(Type::Integer))
}

fn country_of(kind: SchemaType, null: bool) -> Object {
    let mut codes: Vec<serde_json::Value> = COUNTRY_CODES.iter().map(|c| (*c).into()).collect();
    if null {
        codes.push(serde_json::Value::Null);
    }
    ObjectBuilder::new()
        .schema_type(kind)
        .description(Some("ISO 3166-1 alpha-2 country code, upper case (`ES`)"))
        .enum_values(Some(codes))
        .build()
}

/// An assigned ISO 3166-1 alpha-2 code.
pub(crate) fn country() -> Object {
    country_of(SchemaType::Type(Type::String), false)
}

/// An assigned ISO 3166-1 alpha-2 code, or absent.
pub(crate) fn optional_country() -> Object {
    country_of(nullable(Type::String), true)
}

/// One of the languages with email templates.
pub(crate) fn language() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(LANGUAGES))
        .build()
}

/// An email address.
pub(crate) fn email() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(MAX_EMAIL_LEN))
        .pattern(Some(EMAIL_PATTERN))
        .build()
}

/// A first or last name.
pub(crate) fn person_name() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_CHARS))
        .pattern(Some(NAME_PATTERN))
        .build()
}

/// A purchase reference: short text without control characters, or absent.
pub(crate) fn purchase_reference() -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .max_length(Some(crate::purchase_made::MAX_REFERENCE_CHARS))
        .pattern(Some(NO_CONTROL_PATTERN))
        .build()
}

/// The secret of a confirmation link, or its sealed digest.
pub(crate) fn confirmation_token() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::confirm_user::token_pattern()))
        .build()
}
