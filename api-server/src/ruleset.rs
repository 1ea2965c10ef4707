//! A bus's rules: their stored definitions and the one automaton compiled from the enabled
//! ones. Publishing asks it which rules an event matches; rule changes edit it in place
//! (the matcher adds and removes single rules without recompiling the rest).

use std::collections::BTreeMap;

use switchyard_rules::{Matcher, PatternError};

use crate::meta::StoredRule;

#[derive(Default)]
pub struct RuleSet {
    matcher: Matcher,
    rules: BTreeMap<String, StoredRule>,
}

impl RuleSet {
    /// Installs or replaces a rule whose pattern was validated before it was stored.
    pub fn put(&mut self, rule: StoredRule) -> Result<(), PatternError> {
        self.matcher.remove_rule(&rule.name);
        if rule.enabled {
            self.matcher.add_rule(&rule.name, &rule.pattern)?;
        }
        self.rules.insert(rule.name.clone(), rule);
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.matcher.remove_rule(name);
        self.rules.remove(name).is_some()
    }

    pub fn get(&self, name: &str) -> Option<&StoredRule> {
        self.rules.get(name)
    }

    pub fn list(&self) -> impl Iterator<Item = &StoredRule> {
        self.rules.values()
    }

    /// The enabled rules this event (CloudEvents JSON) matches.
    pub fn matches(&self, event: &[u8]) -> Vec<String> {
        if self.matcher.is_empty() {
            return Vec::new();
        }
        match self.matcher.matches_json(event) {
            Ok(names) => names,
            Err(e) => {
                // Events were validated as JSON objects before they get here.
                tracing::error!(error = %e, "matcher refused a validated event");
                Vec::new()
            }
        }
    }
}
