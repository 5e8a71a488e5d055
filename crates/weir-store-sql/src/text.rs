//! Text columns decoded the same way on every dialect.
//!
//! MySQL/MariaDB flag columns with a `_bin` collation as BINARY, and sqlx then refuses to decode
//! them as `String`. Weir wants bytewise collation everywhere (identical ordering and
//! uniqueness on every backend), so text is read through this type, which accepts those bytes.

use sqlx::{Decode, Type};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.0
    }
}

impl Type<sqlx::MySql> for Text {
    fn type_info() -> sqlx::mysql::MySqlTypeInfo {
        <String as Type<sqlx::MySql>>::type_info()
    }

    fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
        <String as Type<sqlx::MySql>>::compatible(ty) || <Vec<u8> as Type<sqlx::MySql>>::compatible(ty)
    }
}

impl<'r> Decode<'r, sqlx::MySql> for Text {
    fn decode(value: sqlx::mysql::MySqlValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let bytes = <&[u8] as Decode<sqlx::MySql>>::decode(value)?;
        Ok(Text(String::from_utf8(bytes.to_vec())?))
    }
}

impl Type<sqlx::Sqlite> for Text {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as Type<sqlx::Sqlite>>::type_info()
    }

    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as Type<sqlx::Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, sqlx::Sqlite> for Text {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Text(<String as Decode<sqlx::Sqlite>>::decode(value)?))
    }
}

impl Type<sqlx::Postgres> for Text {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, sqlx::Postgres> for Text {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Text(<String as Decode<sqlx::Postgres>>::decode(value)?))
    }
}
