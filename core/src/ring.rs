//! TEMPORARY minimal stand-in (replaced by the full module).
#![allow(missing_docs)]
use crate::id::NodeId;
use crate::token::{Token, TokenRange};
use std::collections::BTreeMap;
#[derive(Clone, Debug, PartialEq)]
pub struct Ring { tokens: Vec<Token>, owners: Vec<NodeId>, rf: usize, table: Vec<NodeId>, stride: usize }
#[derive(Debug, thiserror::Error)]
pub enum RingError { #[error("empty")] Empty }
impl Ring {
    pub fn new(a: impl IntoIterator<Item = (Token, NodeId)>, rf: usize) -> Result<Ring, RingError> {
        let mut v: Vec<(Token, NodeId)> = a.into_iter().collect();
        v.sort();
        let tokens: Vec<Token> = v.iter().map(|x| x.0).collect();
        let owners: Vec<NodeId> = v.iter().map(|x| x.1).collect();
        let mut distinct = owners.clone(); distinct.sort(); distinct.dedup();
        let stride = rf.min(distinct.len());
        let mut table = Vec::new();
        for i in 0..tokens.len() {
            let mut got: Vec<NodeId> = Vec::new();
            let mut j = i;
            while got.len() < stride { if !got.contains(&owners[j]) { got.push(owners[j]); } j = (j + 1) % tokens.len(); }
            table.extend(got);
        }
        Ok(Ring { tokens, owners, rf, table, stride })
    }
    pub fn rf(&self) -> usize { self.rf }
    pub fn tokens(&self) -> &[Token] { &self.tokens }
    pub fn owners(&self) -> &[NodeId] { &self.owners }
    pub fn range_index(&self, t: Token) -> usize { let i = self.tokens.partition_point(|x| *x < t); if i == self.tokens.len() { 0 } else { i } }
    pub fn replicas(&self, t: Token) -> &[NodeId] { let i = self.range_index(t); self.replicas_at(i) }
    pub fn replicas_at(&self, i: usize) -> &[NodeId] { &self.table[i * self.stride..(i + 1) * self.stride] }
    pub fn range_at(&self, i: usize) -> TokenRange { let p = if i == 0 { self.tokens.len() - 1 } else { i - 1 }; TokenRange { start: self.tokens[p], end: self.tokens[i] } }
    pub fn nodes(&self) -> Vec<NodeId> { let mut d = self.owners.clone(); d.sort(); d.dedup(); d }
    pub fn effective_ownership(&self) -> BTreeMap<NodeId, f64> { BTreeMap::new() }
}
