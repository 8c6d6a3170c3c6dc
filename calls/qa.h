/* Call quality (QA): what a form is, how an evaluation is scored, how two
 * auditors' evaluations of one call compare. Pure functions over JSON, so
 * the rules are unit-tested without a server (tests/test_qa.c); the rows
 * live in index/qa.c and the HTTP side in web/routes_qa.c. */
#ifndef CALL_QA_H
#define CALL_QA_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "index/index.h"

/* Limits of one form: bounded work per request and a form a person can read. */
#define CALL_QA_SECTIONS_MAX 20
#define CALL_QA_QUESTIONS_MAX 200
#define CALL_QA_TEXT_MAX 500
#define CALL_QA_WEIGHT_MAX 100.0
#define CALL_QA_COMMENTS_MAX 200
#define CALL_QA_COMMENT_MAX 2000

/* A form key: [a-z][a-z0-9_-]{0,62}. */
int call_qa_key_valid(const char *key);

/* Checks sections (a JSON array: [{"title", "questions": [{"id", "text",
 * "type": "yesno"|"scale", "na": bool, "weight": number, "critical":
 * bool}]}]) and returns the definition to store ({"sections": [...]} with
 * every default written out) in *out. VG_EINVAL with a reason in err
 * (a sentence for the person who wrote the form). */
int call_qa_form_check(const json_t *sections, json_t **out, char *err, size_t err_size);

/* Scores answers ({"QUESTION_ID": "yes"|"no"|"na"|1..5}) against a stored
 * definition: every question answered, "na" only where the form allows it.
 * Points: yes 1, no 0, a scale value v (v - 1) / 4. score = the weighted
 * share of points over the applicable (not N/A) questions, in [0, 1]; 0
 * when a critical question fails (a critical yes/no answered no, a
 * critical scale answered 1). VG_EINVAL with a reason in err. */
int call_qa_score(const json_t *definition, const json_t *answers, double *score,
                  int *critical_failed, char *err, size_t err_size);

/* Checks comments ([{"offset_s": seconds from the start, "text"}]) for a
 * range of duration_s seconds; *out gets them sorted by offset. */
int call_qa_comments_check(const json_t *comments, double duration_s, json_t **out, char *err,
                           size_t err_size);

/* Agreement of the evaluations e[0..n) of one call or range, one per
 * auditor (the newest each), per question of definition (for the texts):
 * {"auditors": [...], "evaluations": [{id, auditor, score}], "questions":
 * [{"id", "text", "answers": {auditor: answer}, "agree": bool}],
 * "agreement": share of the questions answered by two or more that all
 * answered alike (null when none), "score_spread"}. */
json_t *call_qa_calibration(const json_t *definition, const idx_qa_eval_t *e, size_t n);

/* The alarm announcement_rate_low: over yesterday and today up to now_us
 * (office days, from the report's daily rollup), the
 * share of decided calls (present / (present + absent + partial)) of each
 * line and each queue; raised naming those under min_rate, cleared when
 * none is. Runs when now_us reaches *next_us, then sets *next_us
 * interval_us later (the retention sweeper calls it every sweep). */
int call_ann_alarm_check(idx_t *idx, double min_rate, int64_t now_us, int64_t interval_us,
                         int64_t *next_us);

#endif
