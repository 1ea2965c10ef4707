//! A bus's rules: their stored definitions and the one automaton compiled from the enabled
//! ones. Publishing asks it which rules an event matches; rule changes edit it in place
//! (the matcher adds and removes single rules without recompiling the rest).

use std::collections::BTreeMap;

use switchyard_rules::{Matcher, PatternError};

use crate::meta::StoredRule;
use crate::target::Target;

#[derive(Default)]
pub struct RuleSet {
    matcher: Matcher,
    rules: BTreeMap<String, StoredRule>,
    /// The checked targets of every rule that can run, enabled or not.
    targets: BTreeMap<String, Vec<Target>>,
    /// Stored rules this version cannot run (written by an older one, before a limit
    /// existed), with why: they match nothing and deliver nothing until replaced.
    inactive: BTreeMap<String, String>,
}

impl RuleSet {
    /// Installs or replaces a rule whose pattern was validated before it was stored, with
    /// its targets as checked (`rulespec::check_targets`).
    pub fn put(&mut self, rule: StoredRule, targets: Vec<Target>) -> Result<(), PatternError> {
        self.matcher.remove_rule(&rule.name);
        if rule.enabled {
            self.matcher.add_rule(&rule.name, &rule.pattern)?;
        }
        self.inactive.remove(&rule.name);
        self.targets.insert(rule.name.clone(), targets);
        self.rules.insert(rule.name.clone(), rule);
        Ok(())
    }

    /// Keeps a stored rule that cannot run, visible with its reason, matching nothing.
    pub fn put_inactive(&mut self, rule: StoredRule, reason: String) {
        self.matcher.remove_rule(&rule.name);
        self.inactive.insert(rule.name.clone(), reason);
        self.targets.remove(&rule.name);
        self.rules.insert(rule.name.clone(), rule);
    }

    /// Turns a rule that can run on or off, keeping its checked targets.
    pub fn set_enabled(
        &mut self,
        name: &str,
        enabled: bool,
        updated_at_ms: i64,
    ) -> Result<(), PatternError> {
        let Some(rule) = self.rules.get_mut(name) else {
            return Ok(());
        };
        rule.enabled = enabled;
        rule.updated_at_ms = updated_at_ms;
        self.matcher.remove_rule(name);
        if enabled && !self.inactive.contains_key(name) {
            self.matcher.add_rule(name, &rule.pattern)?;
        }
        Ok(())
    }

    /// Why a stored rule is not running, if it is one that cannot.
    pub fn inactive_reason(&self, name: &str) -> Option<&str> {
        self.inactive.get(name).map(String::as_str)
    }

    /// Enabled and able to run: the rules whose targets get deliveries, with those targets.
    pub fn active(&self) -> impl Iterator<Item = (&StoredRule, &[Target])> {
        self.runnable().filter(|(r, _)| r.enabled)
    }

    /// Able to run, enabled or not, with their checked targets.
    pub fn runnable(&self) -> impl Iterator<Item = (&StoredRule, &[Target])> {
        self.targets
            .iter()
            .filter_map(|(name, targets)| Some((self.rules.get(name)?, targets.as_slice())))
    }

    pub fn remove(&mut self, name: &str) -> bool {
        self.matcher.remove_rule(name);
        self.inactive.remove(name);
        self.targets.remove(name);
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
