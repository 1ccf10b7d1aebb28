// An in-memory store adapter for atlassian-connect-express: its default (sequelize + sqlite3)
// needs a native build. Same interface as ACE's own adapters (see lib/store/redis.js).
"use strict";

class MemoryStore {
  constructor() {
    this.data = new Map();
  }

  static key(key, clientKey) {
    return clientKey ? `${clientKey}:${key}` : key;
  }

  async get(key, clientKey) {
    const value = this.data.get(MemoryStore.key(key, clientKey));
    return value === undefined ? null : JSON.parse(value);
  }

  async set(key, value, clientKey) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    this.data.set(MemoryStore.key(key, clientKey), text);
    return this.get(key, clientKey);
  }

  async del(key, clientKey) {
    this.data.delete(MemoryStore.key(key, clientKey));
  }

  async saveInstallation(value, clientKey) {
    return this.set("clientInfo", value, clientKey);
  }

  async getAllClientInfos() {
    return [...this.data.entries()]
      .filter(([key]) => key.endsWith(":clientInfo"))
      .map(([, value]) => JSON.parse(value));
  }

  isMemoryStore() {
    return true;
  }

  // Forge associations: not used by a Connect-only app.
  async associateInstallations() {}
  async deleteAssociation() {}
  async getClientSettingsForForgeInstallation() {
    return null;
  }
}

module.exports = { MemoryStore };
