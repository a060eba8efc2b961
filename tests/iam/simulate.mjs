// Evaluates requests against IAM identity policies with a real policy engine,
// @cloud-copilot/iam-simulate (offline: AWS's Service Authorization Reference is
// in its data package). tests/template/iam_simulation.rs writes the input and
// reads the output; it decides what passes.
//
// Usage: node tests/iam/simulate.mjs INPUT.json OUTPUT.json
//
// INPUT:  {"account": "123456789012",
//          "policies": {"<role>": <policy document>},
//          "requests": [{"id", "role", "action", "resource", "context": {key: value},
//                        "resourcePolicy"?: the resource's policy (a KMS key's)}]}
// OUTPUT: {"results": [{"id", "decision": "Allowed" | "ImplicitlyDenied" |
//                        "ExplicitlyDenied" | "Error", "error"?, "note"?,
//                        "statements": [Sid of each statement that allowed it]}],
//          "granted": {"<role>": [every action its policy allows, as written]}}
//
// A request whose resource ARN has no resource type of the action in AWS's
// reference (a legacy short ECS ARN, `service/<name>`) fails the engine's
// validation; it is then evaluated without validation and noted, because IAM
// still evaluates such requests (the ARN a legacy account's resources have).

import { readFileSync, writeFileSync } from 'node:fs'
import { runSimulation, runUnsafeSimulation } from '@cloud-copilot/iam-simulate'

const [input, output] = process.argv.slice(2)
if (!input || !output) {
  console.error('usage: node simulate.mjs INPUT.json OUTPUT.json')
  process.exit(2)
}
const { account, policies, requests } = JSON.parse(readFileSync(input, 'utf8'))

const list = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v])

function simulation(req) {
  const policy = policies[req.role]
  if (!policy) throw new Error(`no policy for role ${req.role}`)
  return {
    identityPolicies: [{ name: req.role, policy }],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(req.resourcePolicy ? { resourcePolicy: req.resourcePolicy } : {}),
    request: {
      action: req.action,
      principal: `arn:aws:iam::${account}:role/${req.role.split('#')[0]}`,
      resource: { accountId: account, resource: req.resource },
      contextVariables: req.context ?? {},
    },
  }
}

function allowingSids(result) {
  const allows = result?.analysis?.identityAnalysis?.allowStatements ?? []
  return allows.map((s) => (typeof s.statement?.sid === 'function' ? s.statement.sid() : undefined) ?? s.explain?.identifier ?? '(no Sid)')
}

const results = []
for (const req of requests) {
  const sim = simulation(req)
  const out = { id: req.id, statements: [] }
  try {
    const res = await runSimulation(sim, {})
    if (res.resultType === 'error') {
      if (res.errors?.message === 'no.resource.types') {
        out.decision = runUnsafeSimulation(sim, {})
        out.note = 'ARN form not in AWS reference (legacy); evaluated without validation'
      } else {
        out.decision = 'Error'
        out.error = JSON.stringify(res.errors)
      }
    } else if (res.resultType === 'single') {
      out.decision = res.overallResult
      out.statements = allowingSids(res.result)
      const ignored = res.result?.ignoredContextKeys ?? []
      if (ignored.length) out.note = `context keys not applicable: ${ignored.join(', ')}`
    } else {
      out.decision = res.overallResult
      out.statements = [...new Set(res.results.flatMap(allowingSids))]
    }
  } catch (e) {
    out.decision = 'Error'
    out.error = String(e?.stack ?? e)
  }
  results.push(out)
}

const granted = {}
for (const [role, policy] of Object.entries(policies)) {
  granted[role] = [
    ...new Set(list(policy.Statement).filter((s) => s.Effect === 'Allow').flatMap((s) => list(s.Action))),
  ].sort()
}

writeFileSync(output, JSON.stringify({ results, granted }, null, 1))
