// Reads env files with Node's two readers, so that tests can compare what Node reads with
// what was encrypted: the npm `dotenv` package's `parse` (what `require('dotenv').config()`
// loads) and Node's own `util.parseEnv` (the parser behind `node --env-file`).
//
// A long-lived process: each stdin line is a JSON object {"path": "..."}; each answer is
// one stdout line, {"dotenv": {...}, "parseEnv": {...}} (or "error" for either).
'use strict'
const fs = require('fs')
const readline = require('readline')
const util = require('util')
const dotenv = require('dotenv')

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => {
  const answer = {}
  try {
    const { path } = JSON.parse(line)
    const content = fs.readFileSync(path)
    try {
      answer.dotenv = dotenv.parse(content)
    } catch (e) {
      answer.dotenvError = String(e)
    }
    try {
      answer.parseEnv = util.parseEnv(content.toString('utf8'))
    } catch (e) {
      answer.parseEnvError = String(e)
    }
  } catch (e) {
    answer.error = String(e)
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
})
