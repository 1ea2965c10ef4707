//! What a rule says, checked: its pattern and its targets, as `PUT` accepts them and as a
//! stored rule is checked again when loaded (it may predate a limit of this version).

use serde_json::Value;

use crate::meta::StoredRule;
use crate::target::{Target, TargetSpec};

/// Why a rule, or a part of one, is refused: which part, and a message that names the
/// field (and, for a pattern, the path in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub part: SpecPart,
    pub message: String,
    /// Where in the pattern, for a pattern.
    pub path: Option<String>,
}

/// The part of a rule a [`SpecError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecPart {
    Pattern,
    Transform,
    Target,
}

impl SpecError {
    /// A pattern the matcher refused.
    pub fn pattern(message: String) -> SpecError {
        unprocessable(SpecPart::Pattern, message)
    }

    /// How the API reports it: well-formed input that breaks a rule.
    pub fn kind(&self) -> switchyard_core::ErrorKind {
        switchyard_core::ErrorKind::Unprocessable
    }
}

fn unprocessable(part: SpecPart, message: String) -> SpecError {
    SpecError {
        part,
        message,
        path: None,
    }
}

/// Largest pattern accepted, as compact JSON.
pub const MAX_PATTERN_BYTES: usize = 64 * 1024;

/// Checks a pattern the way EventBridge does; 422 names the offending path.
pub fn check_pattern(pattern: &Value) -> Result<switchyard_rules::Pattern, SpecError> {
    // Compiling costs about 25 µs a value: the cap keeps one pattern to a fraction of a
    // second of one core, on the test endpoint as on save.
    let size = serde_json::to_string(pattern).map_or(usize::MAX, |t| t.len());
    if size > MAX_PATTERN_BYTES {
        return Err(SpecError {
            path: Some(String::new()),
            ..unprocessable(
                SpecPart::Pattern,
                format!("pattern: is {size} bytes; the limit is {MAX_PATTERN_BYTES}"),
            )
        });
    }
    switchyard_rules::Pattern::from_value(pattern).map_err(|e| SpecError {
        path: Some(e.path.clone()),
        ..unprocessable(SpecPart::Pattern, format!("pattern: {e}"))
    })
}

/// Checks a transform configuration; 422 names the offending field.
pub fn check_transform(transform: &Value) -> Result<switchyard_rules::Transform, SpecError> {
    switchyard_rules::Transform::parse(transform)
        .map_err(|e| unprocessable(SpecPart::Transform, format!("transform: {e}")))
}

/// Checks a rule's targets, each parsed once into what its subscription runs with; the
/// error names the target (`targets[1]: …`).
pub fn check_targets(targets: &[TargetSpec]) -> Result<Vec<Target>, SpecError> {
    let mut ids: Vec<&str> = Vec::with_capacity(targets.len());
    let mut checked = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let at = |msg: String| unprocessable(SpecPart::Target, format!("targets[{i}]: {msg}"));
        if ids.contains(&t.id.as_str()) {
            return Err(at(format!(
                "id {:?} is used by another target of this rule",
                t.id
            )));
        }
        ids.push(&t.id);
        checked.push(Target::check(t).map_err(at)?);
    }
    Ok(checked)
}

/// Checks a stored rule as `PUT` would: its checked targets, or what this version refuses
/// in it.
pub fn validate_stored(rule: &StoredRule) -> Result<Vec<Target>, String> {
    let pattern: Value =
        serde_json::from_str(&rule.pattern).map_err(|e| format!("pattern: {e}"))?;
    check_pattern(&pattern).map_err(|e| e.message)?;
    check_targets(&rule.targets).map_err(|e| e.message)
}
