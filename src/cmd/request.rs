//! A request given on the command line.

/// A request given on the command line.
#[derive(Debug, clap::Args)]
pub(crate) struct RequestArgs {
    /// Who asks: an ARN or `user/NAME`, `role/NAME`.
    #[arg(long)]
    pub(crate) principal: String,
    /// `service:Action`.
    #[arg(long)]
    pub(crate) action: String,
    /// The resource ARN (or `*`).
    #[arg(long, default_value = "*")]
    pub(crate) resource: String,
    /// A context key: `KEY=VALUE`; give a key twice or more for a
    /// multivalued key.
    #[arg(long = "context", value_name = "KEY=VALUE")]
    pub(crate) context: Vec<String>,
}

/// `KEY=VALUE` arguments, a key given twice or more being multivalued.
pub(crate) fn context_args(args: &[String]) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut context: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for kv in args {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(format!("`--context {kv}`: write `KEY=VALUE`"));
        };
        context.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    Ok(context.into_iter().collect())
}
