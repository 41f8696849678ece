//! Helpers shared by the test files.

/// The full message of an error the call must return.
pub fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}
