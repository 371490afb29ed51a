//! JSON-lines request files, as `iamd diff` and `iamd bench` read them.

/// Reads JSON lines (blank lines skipped): each line's value, and the
/// object under its `request` key or the line itself, go to `read`; every
/// problem is reported as `name:LINE: message`, all at once.
pub fn request_lines<T>(
    name: &str,
    text: &str,
    mut read: impl FnMut(&serde_json::Value, &serde_json::Value) -> Result<T, String>,
) -> Result<Vec<T>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{name}:{}", i + 1);
        match serde_json::from_str::<serde_json::Value>(line) {
            Err(e) => errors.push(format!("{at}: not JSON: {e}")),
            Ok(value) => {
                let request = value.get("request").unwrap_or(&value);
                match read(&value, request) {
                    Ok(t) => out.push(t),
                    Err(e) => errors.push(format!("{at}: {e}")),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The `context` object of a request line: a string is single-valued, an
/// array multivalued, anything else read as its JSON text.
pub fn context_values(
    request: &serde_json::Value,
) -> Vec<(String, iamd_policy::context::ContextValue)> {
    use iamd_policy::context::ContextValue;
    let text = |x: &serde_json::Value| x.as_str().map_or_else(|| x.to_string(), str::to_owned);
    request
        .get("context")
        .and_then(serde_json::Value::as_object)
        .map(|obj| {
            obj.iter()
                .map(|(k, v)| {
                    let value = match v {
                        serde_json::Value::Array(a) => {
                            ContextValue::Multi(a.iter().map(text).collect())
                        }
                        other => ContextValue::Single(text(other)),
                    };
                    (k.clone(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}
